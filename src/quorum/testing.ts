import type { MemberHealth } from './members.ts';
import type { MemberPod } from './plan.ts';

/**
 * Compact member fixtures for tables: "L" leader, "F" follower, "X" unhealthy voter, "l" learner,
 * optionally followed by "@index" for the raft index (default 100). Names are main-member-<i>.
 */
export function cluster(spec: string): MemberHealth[] {
  return spec.split(/\s+/).filter((s) => s !== '').map((token, i) => {
    const [kind, index] = token.split('@');
    return {
      id: String(1000 + i),
      name: `main-member-${i}`,
      isLearner: kind === 'l' || kind === 'lx',
      healthy: kind !== 'X' && kind !== 'lx',
      isLeader: kind === 'L',
      raftIndex: Number(index ?? 100),
      revision: 50,
      dbSize: 1 << 20,
    };
  });
}

/** Running, ready, up-to-date pods for the given member names, with overrides per name. */
export function podsFor(names: readonly string[], overrides: Record<string, Partial<MemberPod>> = {}): MemberPod[] {
  return names.map((name) => ({ name, ready: true, terminating: false, upToDate: true, nodeGone: false, dataLost: false, ...overrides[name] }));
}

/** main-member-0 .. main-member-(n-1). */
export function memberNames(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `main-member-${i}`);
}
