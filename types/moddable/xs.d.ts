// Globals of the XS engine on a Moddable device (the SDK declares them in
// xs/includes/xs.d.ts): trace, native, and the buffer types the IO classes
// take. @moddable/typings 5.6 lacks native(): declared here.

interface Trace {
  (...text: (string | number | boolean)[]): void;
}
declare const trace: Trace;

// Binds a native C function by name (the xsmc callback "xs_<name>").
declare function native(name: string): (...args: any[]) => any;

// Memory outside the XS heap (a resource or flash mapping, a static C
// array) that typed arrays and the xsmc buffer calls accept.
declare class HostBuffer {
  readonly byteLength: number;
  private brand: boolean;
}

interface ArrayBufferTypes {
  HostBuffer: HostBuffer;
}

interface ByteBufferTypes extends ArrayBufferTypes {
  Uint8Array: Uint8Array;
  Int8Array: Int8Array;
  DataView: DataView;
}
type ByteBuffer = ByteBufferTypes[keyof ByteBufferTypes];

// The board's IO provider, a global on Moddable devices (setup/target).
declare const device: typeof import('embedded:provider/builtin').default;
