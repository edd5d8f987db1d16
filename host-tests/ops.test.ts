// The op table of the TypeScript core (src/core/ops.ts) agrees with the C
// dispatcher: same ids, same argument counts, same status names.
import { describe, expect, it } from 'vitest';
import { opNargs, statusNames, type OpId } from '../src/core/ops.js';
import { NodeDispatch } from '../src/node/addon.js';

describe('op table', () => {
  const d = new NodeDispatch(new ArrayBuffer(64));
  for (const [id, n] of Object.entries(opNargs)) {
    const op = Number(id) as OpId;
    it(`op ${op} takes exactly ${n} arguments in C`, () => {
      expect(() => d.call(op, new Int32Array(n - 1))).toThrow(`xstrain op ${op}: wrong number of arguments`);
      expect(() => d.call(op, new Int32Array(n + 1))).toThrow('wrong number of arguments');
      // With the right count the dispatcher goes on to check the tensors.
      let message = '';
      try {
        d.call(op, new Int32Array(n));
      } catch (e) {
        message = (e as Error).message;
      }
      expect(message).not.toContain('wrong number of arguments');
      expect(message).not.toContain('unknown op');
    });
  }

  it('C status names match the TypeScript list', () => {
    // Each status is reachable: 2 unknown op, 1 arg count, 3 dims, 5 bounds.
    expect(() => d.call(99 as OpId, new Int32Array(1))).toThrow(`${statusNames[2]} (status 2)`);
    expect(() => d.call(8, new Int32Array(1))).toThrow(`${statusNames[1]} (status 1)`);
    expect(() => d.call(8, Int32Array.of(0, 0, 8))).toThrow(`${statusNames[3]} (status 3)`);
    expect(() => d.call(8, Int32Array.of(1000, 0, 8))).toThrow(`${statusNames[5]} (status 5)`);
  });
});
