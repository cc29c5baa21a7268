import { z } from 'zod';
import { backupStatusSchema, restoreStatusSchema } from './backup.ts';
import { conditionSchema } from './conditions.ts';
import { tlsStatusSchema } from './tls.ts';

const memberStatus = z.object({
  name: z.string().meta({ description: 'Member name, the same as its pod\'s.' }),
  id: z.string().meta({ description: 'etcd member ID in hex, as etcdctl prints it.' }),
  node: z.string().optional().meta({ description: 'Node the member\'s pod runs on.' }),
  role: z.enum(['leader', 'follower', 'learner']),
  healthy: z.boolean().meta({ description: 'Whether etcd counts the member as a healthy member that has caught up.' }),
  dbSize: z.int().min(0).optional().meta({ description: 'Backend database size in bytes.' }),
  dbSizeInUse: z.int().min(0).optional().meta({ description: 'Bytes of the database in use; dbSize minus this is what defragmentation frees.' }),
  lastDefragmentation: z
    .object({
      time: z.string().meta({ format: 'date-time', description: 'When the last defragmentation by the operator finished.' }),
      bytesFreed: z.int().meta({ description: 'How much smaller the database file became.' }),
    })
    .optional()
    .meta({ description: 'The last successful defragmentation of this member by the operator.' }),
  revision: z.int().min(0).optional(),
  drain: z
    .object({
      safe: z.boolean(),
      reason: z.string(),
      message: z.string(),
    })
    .optional()
    .meta({ description: "Whether evicting this member now (draining its node) keeps the budget and quorum, and why; what `etcd-topology check drain` answers." }),
});

/** The status the operator writes; every field is optional because a new object has none. */
export const statusSchema = z.object({
  observedGeneration: z.int().min(0).optional().meta({ description: 'The spec generation this status describes.' }),
  conditions: z
    .array(conditionSchema)
    .optional()
    .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'], description: 'Available, Progressing and Degraded.' }),
  members: z
    .array(memberStatus)
    .optional()
    .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'], description: 'Members as etcd reports them.' }),
  membersReady: z.string().optional().meta({ description: 'Healthy voters / members.count, for display ("3/3").' }),
  leader: z.string().optional().meta({ description: 'Name of the leader, empty when there is none.' }),
  quorum: z
    .object({
      size: z.int().min(0),
      healthy: z.int().min(0),
      faultTolerance: z.int().min(0),
      disruptionsAllowed: z.int().min(0),
    })
    .optional(),
  proxies: z.object({ desired: z.int().min(0), ready: z.int().min(0) }).optional(),
  alarms: z
    .array(
      z.object({
        alarm: z.enum(['NOSPACE', 'CORRUPT']),
        memberId: z.string().meta({ description: 'etcd member ID in hex of the member that raised it.' }),
        member: z.string().optional().meta({ description: 'Name of that member, when etcd lists it.' }),
      }),
    )
    .optional()
    .meta({ description: 'Active etcd alarms. NOSPACE: the cluster accepts only reads and deletes; CORRUPT: members disagree on their data.' }),
  proxiesReady: z.string().optional().meta({ description: 'Ready / desired proxies, for display ("5/5").' }),
  backup: backupStatusSchema.optional().meta({ description: 'The last backup taken, the last that failed, and the one in flight.' }),
  tls: tlsStatusSchema.optional().meta({ description: 'The built-in CA: its expiry and its rotation.' }),
  restore: restoreStatusSchema.optional().meta({ description: 'The backup the members were restored from (spec.bootstrap.fromBackup).' }),
});

export type EtcdTopologyStatus = z.infer<typeof statusSchema>;
export type MemberStatus = z.infer<typeof memberStatus>;
