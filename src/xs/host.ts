// XS-on-Linux host adapter: files and process of the project's XS host
// (native/xs/host/xs_host_io.c). On a board, flash and sensors replace these.

const hostArgs = native('xs_host_args') as () => string[];
const hostFileSize = native('xs_host_file_size') as (path: string) => number;
const hostRead = native('xs_host_read') as (path: string, offset: number, length: number) => ArrayBuffer;
const hostWrite = native('xs_host_write') as (path: string, data: ArrayBuffer | Uint8Array | string, append: boolean) => void;
const hostRename = native('xs_host_rename') as (from: string, to: string) => void;
const hostExit = native('xs_host_exit') as (code: number) => void;
const hostHeap = native('xs_host_heap') as () => [number, number, number, number];
const hostStackPaint = native('xs_host_stack_paint') as () => void;
const hostStackUsed = native('xs_host_stack_used') as () => number;

// C stack high-water mark: paint a region below this call's frame, run
// something, then the bytes below that frame it wrote (0: none).
export function stackPaint(): void {
  hostStackPaint();
}
export function stackUsed(): number {
  return hostStackUsed();
}

export function args(): string[] {
  return hostArgs();
}

export function readFile(path: string): Uint8Array {
  return new Uint8Array(hostRead(path, 0, hostFileSize(path)));
}

// length bytes of path from offset.
export function readRange(path: string, offset: number, length: number): Uint8Array {
  return new Uint8Array(hostRead(path, offset, length));
}

// The XS machine's heap in bytes after a garbage collection, now and at its
// peak (chunks + slots as the machine counts them; not the C arena).
// chunks: the live chunk bytes; slots: the live slot count (sizeof(txSlot)
// is 32 B on this 64-bit host, 16 B on a 32-bit device).
export function heapBytes(): { inUse: number; peak: number; chunks: number; slots: number } {
  const [inUse, peak, chunks, slots] = hostHeap();
  return { inUse, peak, chunks, slots };
}

// The file's size in bytes, or -1 when there is no such file.
export function fileSize(path: string): number {
  try {
    return hostFileSize(path);
  } catch {
    return -1;
  }
}

// Creates or replaces path with bytes.
export function writeFile(path: string, bytes: Uint8Array): void {
  hostWrite(path, bytes, false);
}

// Replaces path's contents at once: written to path.tmp, then renamed over
// path, so a process killed at any moment leaves the old file or the new one.
export function replaceFile(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.tmp`;
  hostWrite(tmp, bytes, false);
  hostRename(tmp, path);
}

export function exit(code: number): void {
  hostExit(code);
}

export function print(line: string): void {
  trace(line + '\n');
}
