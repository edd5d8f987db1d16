// The SDK's Resource (modules/files/resource): a file of the manifest's
// "resources", read in place from flash as a HostBuffer.
declare module 'Resource' {
  interface ResourceData extends HostBuffer {
    slice(begin: number, end?: number): ArrayBuffer;
    slice(begin: number, end: number | undefined, copy: false): HostBuffer;
  }
  interface ResourceConstructor {
    new (path: string): ResourceData;
    exists(path: string): boolean;
  }
  const Resource: ResourceConstructor;
  export { Resource as default };
}
