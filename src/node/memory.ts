// The main job's memory against each board's RAM (scripts/memory-report.ts).
//
// Input: what the XS host measured (src/xs/app.ts --memory: the XS heap after
// a GC at each stage as live chunk bytes and slot count, the buffers the host
// keeps in the heap, the C stack of the steps; src/xs/heap-baseline.ts: the
// engine's built-ins alone) and boards/*.json. The host's heap is split into
// parts, each put where a device keeps it:
//   flash: the built-ins and the modules (preloaded: mcconfig runs the
//     modules at build time and keeps the machine in flash), the plan blob
//     (a resource; the ops run from it in C, its flash section read in
//     place), a copy of the flash section if the host Dispatch kept one
//     (none since the plan is bound: 0), the checkpoint partition;
//   arena: the host's arena ArrayBuffer (a static array on a device);
//   ram: everything else (the decoded plan, frames, objects of the run).
// A slot is 32 B on this 64-bit host and 16 B on a 32-bit device; chunk
// bytes are taken as they are (a chunk's header is smaller on a device).

export const HOST_SLOT_BYTES = 32;
export const DEVICE_SLOT_BYTES = 16;

export interface HeapCount { chunks: number; slots: number }

export interface AppMemory {
  stages: { modules: HeapCount; blob: HeapCount; decoded: HeapCount; started: HeapCount; steps: HeapCount };
  heapInUse: number;
  heapPeak: number;
  planBlobBytes: number;
  arenaBytes: number;
  flashSectionBytes: number;
  checkpointPartitionBytes: number;
  stackBytes: number;
  steps: number;
}

export interface HeapPart {
  what: string;
  where: 'flash' | 'arena' | 'ram';
  chunks: number;
  slots: number;
  hostBytes: number; // chunks + slots x 32
  deviceBytes: number; // chunks + slots x 16
}

export interface BoardMemory {
  board: string;
  name: string;
  ramBytes: number;
  regionBytes: number;
  boardArena: number; // the board's arena (boards/*.json arenaBytes)
  boardXs: number; // the board's XS heap and stack (creation)
  cStackReserve: number | null; // the XS task's C stack where the board file names it
  others: number; // the board's other items (SDK, RTOS, drivers), as the board file gives them
  arena: number; // the run's (the plan's)
  xsHeap: number; // the run's XS heap on a device (the 'ram' parts)
  xsStack: number; // the run's XS stack on a device (slots x 16; 0 when not measured)
  boardXsStackSlots: number | null; // the manifest's creation.stack for the board
  cStack: number; // measured on the host
  total: number; // others + arena + xsHeap + xsStack + cStack
  free: number; // regionBytes - total
  fitsArena: boolean;
  fitsXs: boolean;
  fitsRam: boolean;
}

export interface MemoryReport {
  hostHeapBytes: number; // the heap after the steps, as the host counts it
  parts: HeapPart[];
  deviceXsHeap: number;
  arenaBytes: number;
  stackBytes: number;
  xsStackSlots: number | null; // the smallest XS stack the run completes with (XST_XS_STACK_SLOTS), when measured
  boards: BoardMemory[];
}

function part(what: string, where: HeapPart['where'], chunks: number, slots: number): HeapPart {
  return { what, where, chunks, slots, hostBytes: chunks + slots * HOST_SLOT_BYTES, deviceBytes: chunks + slots * DEVICE_SLOT_BYTES };
}

function minus(a: HeapCount, b: HeapCount): HeapCount {
  return { chunks: a.chunks - b.chunks, slots: a.slots - b.slots };
}

interface BoardItem { what: string; bytes: number; holds?: BoardItem[] }
export interface BoardFile {
  name: string;
  ramBytes: number;
  arenaBytes: number;
  memory: { regionBytes: number; items: BoardItem[] };
}

// The board's items with a 'holds' list replaced by what it holds.
function flatten(items: BoardItem[]): BoardItem[] {
  return items.flatMap((i) => (i.holds ? flatten(i.holds) : [i]));
}

// xsStackSlots: the smallest XS stack (slots) the app ran with
// (scripts/memory-report.ts); stackSlots: each board's creation.stack.
export function memoryReport(m: AppMemory, baseline: HeapCount, boards: Record<string, BoardFile>,
  xsStackSlots: number | null = null, stackSlots: Record<string, number> = {}): MemoryReport {
  const s = m.stages;
  const modules = minus(s.modules, baseline);
  const blobStage = minus(s.blob, s.modules);
  const run = minus(minus(s.steps, s.decoded), { chunks: m.arenaBytes + m.flashSectionBytes + m.checkpointPartitionBytes, slots: 0 });
  const parts = [
    part('XS built-ins', 'flash', baseline.chunks, baseline.slots),
    part('modules (code and module objects)', 'flash', modules.chunks, modules.slots),
    part('plan blob', 'flash', m.planBlobBytes, 0),
    part('options, frames readers (with the blob read)', 'ram', blobStage.chunks - m.planBlobBytes, blobStage.slots),
    part('decoded plan (header, IO, INIT and REGIONS records; the ops run in C from the blob)', 'ram', s.decoded.chunks - s.blob.chunks, s.decoded.slots - s.blob.slots),
    part('arena ArrayBuffer', 'arena', m.arenaBytes, 0),
    ...(m.flashSectionBytes ? [part("copy of the plan's flash section (host Dispatch)", 'flash', m.flashSectionBytes, 0)] : []),
    part('checkpoint partition (host file in RAM)', 'flash', m.checkpointPartitionBytes, 0),
    part('trainer, capture frames, learner, guard, the steps', 'ram', run.chunks, run.slots),
  ];
  for (const p of parts) {
    if (p.chunks < 0 || p.slots < 0) throw new Error(`memory report: part '${p.what}' is negative (${p.chunks} chunk bytes, ${p.slots} slots): the stages are not in order`);
  }
  const deviceXsHeap = parts.filter((p) => p.where === 'ram').reduce((a, p) => a + p.deviceBytes, 0);
  const out: BoardMemory[] = [];
  for (const [board, b] of Object.entries(boards)) {
    const items = flatten(b.memory.items);
    const isArena = (i: BoardItem) => i.what.startsWith('arena');
    const isXs = (i: BoardItem) => i.what.startsWith('XS heap');
    const isStack = (i: BoardItem) => /task stack/.test(i.what);
    const boardXs = items.filter(isXs).reduce((a, i) => a + i.bytes, 0);
    const stack = items.filter(isStack);
    const others = items.filter((i) => !isArena(i) && !isXs(i) && !isStack(i)).reduce((a, i) => a + i.bytes, 0);
    const cStack = m.stackBytes;
    const xsStack = (xsStackSlots ?? 0) * DEVICE_SLOT_BYTES;
    const total = others + m.arenaBytes + deviceXsHeap + xsStack + cStack;
    out.push({
      board, name: b.name, ramBytes: b.ramBytes, regionBytes: b.memory.regionBytes, boardArena: b.arenaBytes, boardXs,
      cStackReserve: stack.length ? stack.reduce((a, i) => a + i.bytes, 0) : null, others,
      arena: m.arenaBytes, xsHeap: deviceXsHeap, xsStack, boardXsStackSlots: stackSlots[board] ?? null, cStack, total, free: b.memory.regionBytes - total,
      fitsArena: m.arenaBytes <= b.arenaBytes,
      // The XS heap and the stack share the board's XS memory; the stack
      // must also fit the board's creation.stack.
      fitsXs: deviceXsHeap + xsStack <= boardXs && (xsStackSlots === null || stackSlots[board] === undefined || xsStackSlots <= stackSlots[board]!),
      fitsRam: total <= b.memory.regionBytes,
    });
  }
  const hostHeapBytes = s.steps.chunks + s.steps.slots * HOST_SLOT_BYTES;
  return { hostHeapBytes, parts, deviceXsHeap, arenaBytes: m.arenaBytes, stackBytes: m.stackBytes, xsStackSlots, boards: out };
}

function n(x: number): string {
  return x.toLocaleString('en-US');
}

export function formatMemoryReport(r: MemoryReport): string {
  const lines: string[] = [];
  lines.push(`XS heap after the steps on the host: ${n(r.hostHeapBytes)} B (chunks + slots x ${HOST_SLOT_BYTES} B)`);
  lines.push('');
  lines.push('| part of the host heap | on a device | chunks B | slots | host B | device B |');
  lines.push('|---|---|---:|---:|---:|---:|');
  for (const p of r.parts) lines.push(`| ${p.what} | ${p.where} | ${n(p.chunks)} | ${n(p.slots)} | ${n(p.hostBytes)} | ${n(p.deviceBytes)} |`);
  lines.push('');
  lines.push(`device XS heap (the 'ram' parts, slots x ${DEVICE_SLOT_BYTES} B): ${n(r.deviceXsHeap)} B; arena ${n(r.arenaBytes)} B; C stack of the steps ${n(r.stackBytes)} B (host, x86-64); ` +
    `XS stack ${r.xsStackSlots === null ? 'not measured' : `${n(r.xsStackSlots)} slots = ${n(r.xsStackSlots * DEVICE_SLOT_BYTES)} B (the smallest the run completes with)`}`);
  lines.push('');
  lines.push('| board | RAM | region | board: arena / XS heap+stack (stack slots) / C stack / other | run: arena | run: XS heap | run: XS stack | run: C stack | run total | free |');
  lines.push('|---|---:|---:|---|---:|---:|---:|---:|---:|---:|');
  for (const b of r.boards) {
    const flag = (ok: boolean) => (ok ? '' : ' (over)');
    lines.push(`| ${b.board} | ${n(b.ramBytes)} | ${n(b.regionBytes)} | ${n(b.boardArena)} / ${n(b.boardXs)} (${b.boardXsStackSlots ?? '?'}) / ${b.cStackReserve === null ? 'n/a' : n(b.cStackReserve)} / ${n(b.others)} | ` +
      `${n(b.arena)}${flag(b.fitsArena)} | ${n(b.xsHeap)}${flag(b.fitsXs)} | ${n(b.xsStack)} | ${n(b.cStack)} | ${n(b.total)}${flag(b.fitsRam)} | ${n(b.free)} |`);
  }
  return lines.join('\n');
}
