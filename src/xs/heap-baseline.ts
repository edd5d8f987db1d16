// The XS machine's heap with only the host adapter loaded: what the engine's
// built-ins take on this host (on a device, preloaded in flash).
//   xst-xs out/ts/xs/heap-baseline.js  ->  {"heapBaseline":{"chunks":C,"slots":S}}
import { heapBytes, print } from './host.js';

const { chunks, slots } = heapBytes();
print(JSON.stringify({ heapBaseline: { chunks, slots } }));
