import type { z } from 'zod';
import { CRON_PATTERN, cronError } from './cron.ts';

/**
 * One admission rule, written twice on purpose: as the CEL that the API server evaluates
 * (x-kubernetes-validations in the generated CRD) and as the same predicate in TypeScript, so that
 * zod refuses in tests and in the operator exactly what the API server refuses at admission.
 */
export interface Rule<Self> {
  /** The CEL expression; `self` is the value at the schema node the rule sits on. */
  rule: string;
  message: string;
  /** Where the API server reports the error, relative to the node (object-level rules only). */
  fieldPath?: string;
  /** The same predicate over the parsed value; true when the value is allowed. */
  holds: (self: Self) => boolean;
}

/** A rule that compares a value with its previous version (CEL `oldSelf`); only the API server can check it on update. */
export interface TransitionRule<Self> {
  rule: string;
  message: string;
  fieldPath?: string;
  holds: (self: Self, oldSelf: Self) => boolean;
}

/** The x-kubernetes-validations entry of a rule. */
export function toValidation(r: Rule<never> | TransitionRule<never>): { rule: string; message: string; fieldPath?: string } {
  return r.fieldPath === undefined ? { rule: r.rule, message: r.message } : { rule: r.rule, message: r.message, fieldPath: r.fieldPath };
}

/** A zod superRefine callback that reports the rule's message at its fieldPath when the value breaks it. */
export function refineWith<Self>(r: Rule<Self>): (value: Self, ctx: z.RefinementCtx) => void {
  const path = r.fieldPath === undefined ? [] : r.fieldPath.split('.').filter((p) => p !== '');
  return (value, ctx) => {
    if (!r.holds(value)) ctx.addIssue({ code: 'custom', message: r.message, path });
  };
}

export const ALLOWED_MEMBER_COUNTS = [1, 3, 5, 7] as const;

/** Rule on spec.members.count. */
export const memberCountRule: Rule<number> = {
  rule: 'self in [1, 3, 5, 7]',
  message:
    'members.count must be 1, 3, 5 or 7: an even count tolerates no more member failures than the odd count below it ' +
    '(4 members survive 1 loss, like 3, but need 3 for quorum), and more than 7 members slow every write',
  holds: (count) => (ALLOWED_MEMBER_COUNTS as readonly number[]).includes(count),
};

/** Rule on spec: maxUnavailable never above the fault tolerance, (count - 1) / 2 in integer division. */
export const maxUnavailableRule: Rule<{ members: { count: number }; disruption: { maxUnavailable?: number | undefined } }> = {
  rule:
    '!has(self.disruption) || !has(self.disruption.maxUnavailable) || !has(self.members) || !has(self.members.count) || ' +
    'self.disruption.maxUnavailable <= (self.members.count - 1) / 2',
  message:
    'disruption.maxUnavailable must not exceed the fault tolerance of members.count, (count - 1) / 2: ' +
    '0 for 1 member, 1 for 3, 2 for 5, 3 for 7; a larger budget would let voluntary disruptions take quorum away',
  fieldPath: '.disruption.maxUnavailable',
  holds: (spec) => spec.disruption.maxUnavailable === undefined || spec.disruption.maxUnavailable <= Math.trunc((spec.members.count - 1) / 2),
};

/** The duration syntax of flags.ts's parseDuration, for CEL and OpenAPI patterns. */
export const DURATION_PATTERN = '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$';

/** Rule on spec.members.autoCompaction: the retention's syntax depends on the mode, as etcd reads it. */
export const retentionRule: Rule<{ mode: 'periodic' | 'revision'; retention?: string | undefined }> = {
  rule:
    "!has(self.retention) || (self.mode == 'revision' ? self.retention.matches('^[0-9]+$') : " +
    `(self.retention.matches('^[0-9]+$') || self.retention.matches('${DURATION_PATTERN.replaceAll('\\', '\\\\')}')))`,
  message:
    'autoCompaction.retention must be a duration such as 1h or 30m (a bare number means hours) when mode is periodic, ' +
    'and a whole number of revisions such as 1000 when mode is revision',
  fieldPath: '.retention',
  holds: ({ mode, retention }) =>
    retention === undefined ||
    /^[0-9]+$/.test(retention) ||
    (mode === 'periodic' && new RegExp(DURATION_PATTERN).test(retention)),
};

/** Rule on spec.members.storage: the class is fixed once members' volumes exist. */
export const storageClassImmutableRule: TransitionRule<{ storageClassName?: string | undefined }> = {
  rule:
    'has(self.storageClassName) == has(oldSelf.storageClassName) && ' +
    '(!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)',
  message:
    'members.storage.storageClassName is immutable: the members\' volumes were created with it; ' +
    'to move to another class, create a new EtcdTopology and migrate the data',
  holds: (self, oldSelf) => self.storageClassName === oldSelf.storageClassName,
};

/** Rule on spec.members.storage: a StatefulSet's volume claim template cannot change after creation. */
export const storageSizeImmutableRule: TransitionRule<{ size: number | string }> = {
  // has() guards: the API server also checks the rule against the schema default ({}), where size is absent.
  rule: 'has(self.size) == has(oldSelf.size) && (!has(self.size) || self.size == oldSelf.size)',
  message:
    'members.storage.size cannot change after creation: the member StatefulSet\'s volume claim template is immutable; ' +
    'expand the members\' PersistentVolumeClaims directly if their StorageClass allows expansion',
  holds: (self, oldSelf) => self.size === oldSelf.size,
};

/**
 * The longest name whose derived names still fit: a StatefulSet's pods carry a controller-revision-hash
 * label "<statefulset>-<10 chars>" of at most 63 characters, and the StatefulSet is "<name>-member".
 */
export const MAX_NAME_LENGTH = 63 - '-member'.length - '-'.length - 10;

/** Rule on the whole object: the name must make valid Service (DNS-1035) and StatefulSet names. */
export const nameRule: Rule<{ metadata: { name?: string | undefined } }> = {
  rule: `!has(self.metadata.name) || (self.metadata.name.size() <= ${MAX_NAME_LENGTH} && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$'))`,
  message:
    `metadata.name must start with a letter, contain only lowercase letters, digits and '-', and be at most ${MAX_NAME_LENGTH} characters, ` +
    'because the Services and the member StatefulSet are named after it',
  holds: ({ metadata: { name } }) => name === undefined || (name.length <= MAX_NAME_LENGTH && /^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(name)),
};

/** Rule on spec.backup.schedule: a 5-field cron expression, read in UTC. */
export const cronRule: Rule<string | undefined> = {
  rule: `self.matches('${CRON_PATTERN}')`,
  message:
    'backup.schedule must be a 5-field cron expression in UTC (minute 0-59, hour 0-23, day of month 1-31, month 1-12 or JAN-DEC, ' +
    'day of week 0-7 or SUN-SAT; each field *, a value, a range a-b, a list a,b or a step */n), such as "0 * * * *" for hourly',
  holds: (s) => s === undefined || cronError(s) === undefined,
};

/** Rule on spec.backup and spec.bootstrap.fromBackup: exactly one destination. */
export const destinationRule: Rule<{ s3?: unknown; volume?: unknown }> = {
  rule: 'has(self.s3) != has(self.volume)',
  message: 'exactly one destination must be set: s3 (a bucket) or volume (a PersistentVolumeClaim), not both and not neither',
  holds: (self) => (self.s3 !== undefined) !== (self.volume !== undefined),
};

/** Rule on spec: bootstrap is read once, when the members are created, so it cannot be added, changed or removed later. */
export const bootstrapImmutableRule: TransitionRule<{ bootstrap?: unknown }> = {
  rule: 'has(self.bootstrap) == has(oldSelf.bootstrap) && (!has(self.bootstrap) || self.bootstrap == oldSelf.bootstrap)',
  message:
    'bootstrap is immutable: the members were created from it (or without it) and etcd reads it only then; ' +
    'to restore a running topology from a backup, delete it and create it again with bootstrap.fromBackup (docs/runbooks/restore.md)',
  fieldPath: '.bootstrap',
  holds: (self, oldSelf) => JSON.stringify(self.bootstrap) === JSON.stringify(oldSelf.bootstrap),
};
