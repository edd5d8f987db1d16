// XS-on-Linux host adapter: files and process of the project's XS host
// (native/xs/host/xs_host_io.c). On a board, flash and sensors replace these.

const hostArgs = native('xs_host_args') as () => string[];
const hostFileSize = native('xs_host_file_size') as (path: string) => number;
const hostRead = native('xs_host_read') as (path: string, offset: number, length: number) => ArrayBuffer;
const hostExit = native('xs_host_exit') as (code: number) => void;

export function args(): string[] {
  return hostArgs();
}

export function readFile(path: string): Uint8Array {
  return new Uint8Array(hostRead(path, 0, hostFileSize(path)));
}

export function exit(code: number): void {
  hostExit(code);
}

export function print(line: string): void {
  trace(line + '\n');
}
