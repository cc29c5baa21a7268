/** What a topology allows: its member count and, when set, disruption.maxUnavailable. */
export interface Budget {
  count: number;
  maxUnavailable?: number | undefined;
}

/** Votes needed to commit: a majority of the voters. */
export function quorumSize(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

/** Voters that may fail while the rest still make quorum. */
export function faultTolerance(voters: number): number {
  return Math.max(0, Math.floor((voters - 1) / 2));
}

/** disruption.maxUnavailable as applied: 1 when unset, never above the fault tolerance (so 0 for one member). */
export function effectiveMaxUnavailable(budget: Budget): number {
  return Math.max(0, Math.min(budget.maxUnavailable ?? 1, faultTolerance(budget.count)));
}

/**
 * The fewest healthy voters a voluntary disruption may leave: count - maxUnavailable, and never fewer
 * than quorum of the voters etcd has now (more than count while scaling in, so the larger quorum rules).
 */
export function minHealthyVoters(budget: Budget, voters: number = budget.count): number {
  return Math.max(budget.count - effectiveMaxUnavailable(budget), quorumSize(voters));
}

/** How many healthy voters may be disrupted now: status.quorum.disruptionsAllowed. */
export function disruptionsAllowed(healthyVoters: number, budget: Budget, voters: number = budget.count): number {
  return Math.max(0, healthyVoters - minHealthyVoters(budget, voters));
}

/**
 * minAvailable of the member PodDisruptionBudget. The PDB counts pods whose readiness gate says etcd
 * holds them healthy, so the eviction API enforces the same floor as the operator.
 */
export function pdbMinAvailable(budget: Budget, voters: number = budget.count): number {
  return minHealthyVoters(budget, voters);
}
