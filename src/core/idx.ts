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

export interface ImageSet {
  count: number;
  pixels: number; // per image
  images: Uint8Array; // count * pixels
  labels: Uint8Array; // count
}

export function imageSet(images: IdxArray, labels: IdxArray, what: string): ImageSet {
  const count = images.dims[0]!;
  if (labels.dims[0] !== count) {
    throw new Error(`${what}: ${count} images but ${labels.dims[0]} labels`);
  }
  return { count, pixels: images.data.length / count, images: images.data, labels: labels.data };
}

export function image(set: ImageSet, i: number): Uint8Array {
  return set.images.subarray(i * set.pixels, (i + 1) * set.pixels);
}
