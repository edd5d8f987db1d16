// The SDK's flash module (modules/files/flash): a named partition ("storage"
// on nRF52; a data partition of the partition table on ESP32), addressed
// from its start; sectors are blockSize bytes.
declare module 'flash' {
  class Flash {
    constructor(partition: string);
    constructor(offset: number, byteLength: number);
    erase(sector: number): void;
    // An ArrayBuffer copy; with useHostBuffer, a view of the flash itself.
    read(offset: number, byteLength: number, useHostBuffer?: boolean): ArrayBuffer | HostBuffer;
    write(offset: number, byteLength: number, buffer: ByteBuffer): void;
    map(): HostBuffer;
    readonly byteLength: number;
    readonly blockSize: number;
  }
  export { Flash as default };
}
