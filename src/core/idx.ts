// IDX files (the original MNIST format): big-endian magic, dims, then data.

export interface IdxArray {
  dims: number[];
  data: Uint8Array; // unsigned bytes (type 0x08)
}

export function parseIdx(bytes: Uint8Array, what = 'idx file'): IdxArray {
  if (bytes.length < 4) throw new Error(`${what}: ${bytes.length} bytes is too short for an IDX header`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = dv.getUint32(0);
  const type = (magic >>> 8) & 0xff, rank = magic & 0xff;
  if (magic >>> 16 !== 0 || type !== 0x08 || rank < 1 || rank > 4) {
    throw new Error(`${what}: not an unsigned-byte IDX file (magic 0x${magic.toString(16)})`);
  }
  const dims: number[] = [];
  let n = 1;
  for (let k = 0; k < rank; k++) {
    const d = dv.getUint32(4 + 4 * k);
    dims.push(d);
    n *= d;
  }
  const start = 4 + 4 * rank;
  if (bytes.length !== start + n) {
    throw new Error(`${what}: header says ${dims.join('x')} = ${n} bytes of data, file has ${bytes.length - start}`);
  }
  return { dims, data: bytes.subarray(start) };
}

export class ImageSet {
  readonly count: number;
  readonly pixels: number; // per image

  constructor(readonly images: Uint8Array, readonly labels: Uint8Array, count: number) {
    this.count = count;
    this.pixels = images.length / count;
  }

  image(i: number): Uint8Array {
    return this.images.subarray(i * this.pixels, (i + 1) * this.pixels);
  }
}

export function imageSet(images: IdxArray, labels: IdxArray, what: string): ImageSet {
  const count = images.dims[0]!;
  if (labels.dims[0] !== count) {
    throw new Error(`${what}: ${count} images but ${labels.dims[0]} labels`);
  }
  return new ImageSet(images.data, labels.data, count);
}
