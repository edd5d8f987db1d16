// The manifest's "config" object, merged over its platform sections.
declare module 'mc/config' {
  const config: Record<string, any>;
  export { config as default };
}
