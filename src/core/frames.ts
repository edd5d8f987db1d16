// Labelled grayscale frames in one file, for replaying a camera stream on a
// host (the main job's Fashion-MNIST at 96x96, src/xs/app.ts). Written on
// Node by scripts/prepare-app.ts, read a frame at a time on XS through any
// positioned read (the XS host's xs_host_read), so the stream never sits in
// the XS heap. Platform-free.
//
// Format, version 1 (integers little-endian):
//   0  "XSTF"      magic
//   4  u32 version 1
//   8  u32 count   frames
//   12 u32 width
//   16 u32 height
//   20 count label bytes, padded with 0 to a multiple of 4
//   then count frames of width * height bytes, row-major, one byte a pixel

import type { ReplaySource } from './sensor-replay.js';
import type { Frame } from './sensor.js';

export const FRAMES_VERSION = 1;
const MAGIC = [0x58, 0x53, 0x54, 0x46]; // "XSTF"
const HEADER = 20;

export interface FramesHeader {
  count: number;
  width: number;
  height: number;
  labelsAt: number; // byte offsets in the file
  pixelsAt: number;
}

export function encodeFrames(width: number, height: number, labels: Uint8Array, pixels: Uint8Array): Uint8Array {
  const count = labels.length, pixelsAt = HEADER + Math.ceil(count / 4) * 4;
  if (pixels.length !== count * width * height) throw new RangeError(`frames: ${pixels.length} pixel bytes, ${count} frames of ${width}x${height} need ${count * width * height}`);
  const out = new Uint8Array(pixelsAt + pixels.length);
  const v = new DataView(out.buffer);
  out.set(MAGIC);
  v.setUint32(4, FRAMES_VERSION, true);
  v.setUint32(8, count, true);
  v.setUint32(12, width, true);
  v.setUint32(16, height, true);
  out.set(labels, HEADER);
  out.set(pixels, pixelsAt);
  return out;
}

// Checks the first 20 bytes against the file's size.
export function parseFramesHeader(head: Uint8Array, fileBytes: number, what = 'frames file'): FramesHeader {
  if (head.length < HEADER || MAGIC.some((m, i) => head[i] !== m)) throw new Error(`${what}: not a frames file (no "XSTF"); make it with npm start's prepare step (scripts/prepare-app.ts)`);
  const v = new DataView(head.buffer, head.byteOffset, HEADER), u32 = (at: number) => v.getUint32(at, true);
  if (u32(4) !== FRAMES_VERSION) throw new Error(`${what}: format version ${u32(4)}, this app reads ${FRAMES_VERSION}`);
  const count = u32(8), width = u32(12), height = u32(16), pixelsAt = HEADER + Math.ceil(count / 4) * 4;
  if (count < 1 || width < 1 || height < 1 || pixelsAt + count * width * height !== fileBytes) {
    throw new Error(`${what}: header says ${count} frames of ${width}x${height}, the file has ${fileBytes} bytes (truncated? prepare it again)`);
  }
  return { count, width, height, labelsAt: HEADER, pixelsAt };
}

// A frames file read through `read(offset, length)`: the labels held (one
// byte each), a frame read when asked for.
export class FramesReader {
  readonly header: FramesHeader;
  readonly labels: Uint8Array;

  constructor(readonly read: (offset: number, length: number) => Uint8Array, fileBytes: number, what = 'frames file') {
    this.header = parseFramesHeader(read(0, Math.min(HEADER, fileBytes)), fileBytes, what);
    this.labels = read(this.header.labelsAt, this.header.count).slice();
  }

  get count(): number {
    return this.header.count;
  }

  frame(index: number): Frame {
    const { width, height, pixelsAt, count } = this.header;
    if (!(index >= 0 && index < count)) throw new RangeError(`frame ${index} is outside the file's ${count} frames`);
    const n = width * height;
    return { width, height, pixels: this.read(pixelsAt + index * n, n) };
  }

  label(index: number): number {
    return this.labels[index]!;
  }

  // The frames in file order, for a ReplaySensor.
  source(): ReplaySource<Frame> {
    return { length: this.count, get: (i) => this.frame(i) };
  }
}

// Bilinear resize of a w x h grayscale image to W x H, with the pixel
// centres aligned (half-pixel centres, as OpenCV's INTER_LINEAR and
// TensorFlow's resize with half_pixel_centers: source x = (X + 0.5) * w / W
// - 0.5, clamped to the edge), rounded half up to a byte.
export function resizeBilinear(src: Uint8Array, w: number, h: number, W: number, H: number): Uint8Array {
  if (src.length !== w * h) throw new RangeError(`resize: ${src.length} bytes is not a ${w}x${h} image`);
  const out = new Uint8Array(W * H);
  for (let Y = 0; Y < H; Y++) {
    const sy = Math.min(Math.max((Y + 0.5) * (h / H) - 0.5, 0), h - 1);
    const y0 = Math.floor(sy), y1 = Math.min(y0 + 1, h - 1), fy = sy - y0;
    for (let X = 0; X < W; X++) {
      const sx = Math.min(Math.max((X + 0.5) * (w / W) - 0.5, 0), w - 1);
      const x0 = Math.floor(sx), x1 = Math.min(x0 + 1, w - 1), fx = sx - x0;
      const top = src[y0 * w + x0]! * (1 - fx) + src[y0 * w + x1]! * fx;
      const bottom = src[y1 * w + x0]! * (1 - fx) + src[y1 * w + x1]! * fx;
      out[Y * W + X] = Math.floor(top * (1 - fy) + bottom * fy + 0.5);
    }
  }
  return out;
}
