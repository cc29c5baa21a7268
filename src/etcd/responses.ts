import { z } from 'zod';

// etcd's JSON gateway speaks proto3 JSON: int64 and uint64 come as decimal strings, fields at their
// zero value are left out. Member IDs stay strings (uint64 does not fit a JS number); counters and
// sizes become numbers (they stay far below 2^53).

const uint64 = z.string().regex(/^\d+$/);
const count = uint64.transform(Number).default(0);

const header = z.object({
  cluster_id: uint64.optional(),
  member_id: uint64.optional(),
  revision: count,
  raft_term: count,
});

const member = z.object({
  ID: uint64,
  name: z.string().default(''),
  peerURLs: z.array(z.string()).default([]),
  clientURLs: z.array(z.string()).default([]),
  isLearner: z.boolean().default(false),
});

export const memberListResponse = z.object({ header, members: z.array(member).default([]) });

export const memberAddResponse = z.object({ header, member, members: z.array(member).default([]) });

export const memberChangeResponse = z.object({ header, members: z.array(member).default([]) });

export const statusResponse = z.object({
  header,
  version: z.string().default(''),
  dbSize: count,
  dbSizeInUse: count,
  dbSizeQuota: count,
  leader: uint64.default('0'),
  raftIndex: count,
  raftTerm: count,
  raftAppliedIndex: count,
  errors: z.array(z.string()).default([]),
  isLearner: z.boolean().default(false),
  storageVersion: z.string().default(''),
});

export const alarmResponse = z.object({
  header,
  alarms: z.array(z.object({ memberID: uint64, alarm: z.enum(['NONE', 'NOSPACE', 'CORRUPT']).default('NONE') })).default([]),
});

export const emptyResponse = z.object({}).loose();

export const healthResponse = z.object({ health: z.string(), reason: z.string().default('') });

/** The body etcd's gateway returns with a non-2xx status: a gRPC status. */
export const errorResponse = z.object({ code: z.number().int(), message: z.string().default('') });

export type EtcdMemberInfo = z.infer<typeof member>;
export type MemberListResponse = z.infer<typeof memberListResponse>;
export type MemberAddResponse = z.infer<typeof memberAddResponse>;
export type StatusResponse = z.infer<typeof statusResponse>;
export type AlarmResponse = z.infer<typeof alarmResponse>;
