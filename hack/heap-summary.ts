// Summarises a V8 heap snapshot (.heapsnapshot, as --heapsnapshot-signal writes it): self size by node
// type and by constructor name, so that a benchmark can say where the heap goes.
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** One row: what, how many nodes, their self size in bytes. */
export interface HeapRow {
  name: string;
  count: number;
  bytes: number;
}

/** Self sizes of a snapshot, grouped by node type and by (type, name), largest first. */
export function summariseHeap(file: string, top = 15): { total: number; byType: HeapRow[]; byName: HeapRow[] } {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f)) as [number, number, number];
  const byType = new Map<string, HeapRow>();
  const byName = new Map<string, HeapRow>();
  let total = 0;
  const add = (m: Map<string, HeapRow>, name: string, bytes: number): void => {
    const row = m.get(name) ?? { name, count: 0, bytes: 0 };
    row.count++;
    row.bytes += bytes;
    m.set(name, row);
  };
  for (let i = 0; i < snap.nodes.length; i += fields.length) {
    const type = types[snap.nodes[i + typeAt]!]!;
    const bytes = snap.nodes[i + sizeAt]!;
    total += bytes;
    add(byType, type, bytes);
    // Strings and code are named by their content; group them by type alone.
    const name = type === 'object' || type === 'closure' ? `${type} ${snap.strings[snap.nodes[i + nameAt]!]}` : type;
    add(byName, name, bytes);
  }
  const largest = (m: Map<string, HeapRow>): HeapRow[] => [...m.values()].sort((a, b) => b.bytes - a.bytes).slice(0, top);
  return { total, byType: largest(byType), byName: largest(byName) };
}
