// Globals of the XS engine as the Moddable runtime and the project's XS host
// provide them (see native/xs/host). `native` binds a C function by name, the
// way Moddable's TypeScript modules do.
declare function native(name: string): (...args: any[]) => any;
declare function trace(...text: string[]): void;
