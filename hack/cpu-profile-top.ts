// node hack/cpu-profile-top.ts <file.cpuprofile> [count]: the functions with the most self time in a
// V8 CPU profile (node --cpu-prof), with their share of all samples; for a benchmark's notes.
import { readFileSync } from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time (ms) per function (name, file:line), largest first, and the total. */
export function selfTimes(profile: Profile): { total: number; rows: { what: string; ms: number }[] } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const ms = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const frame = byId.get(id)!.callFrame;
    const what = `${frame.functionName || '(anonymous)'} ${frame.url ? `${path.basename(frame.url)}:${frame.lineNumber + 1}` : ''}`.trim();
    const delta = (profile.timeDeltas[i] ?? 0) / 1000;
    total += delta;
    ms.set(what, (ms.get(what) ?? 0) + delta);
  });
  return { total, rows: [...ms].map(([what, t]) => ({ what, ms: t })).sort((a, b) => b.ms - a.ms) };
}

if (import.meta.main) {
  const [file, countArg] = process.argv.slice(2);
  if (!file) {
    console.error('usage: node hack/cpu-profile-top.ts <file.cpuprofile> [count]');
    process.exit(2);
  }
  const { total, rows } = selfTimes(JSON.parse(readFileSync(file, 'utf8')) as Profile);
  console.log(`${(total / 1000).toFixed(1)} s sampled`);
  for (const r of rows.slice(0, Number(countArg ?? 30))) console.log(`${((100 * r.ms) / total).toFixed(1).padStart(5)}%  ${(r.ms / 1000).toFixed(2).padStart(7)} s  ${r.what}`);
}
