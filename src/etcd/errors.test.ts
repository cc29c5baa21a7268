import { describe, expect, it } from 'vitest';
import { codeForGrpc } from './errors.ts';

describe('codeForGrpc: which etcd answers let a caller try another member', () => {
  it.each<[code: number, message: string, expected: string]>([
    [14, 'etcdserver: no leader', 'ETOP_ETCD_UNAVAILABLE'],
    [4, 'context deadline exceeded', 'ETOP_ETCD_UNAVAILABLE'],
    // A learner refuses linearizable calls (a member list, say) that a voter answers.
    [9, 'etcdserver: rpc not supported for learner', 'ETOP_ETCD_UNAVAILABLE'],
    [9, 'etcdserver: not leader', 'ETOP_ETCD_REQUEST'],
    [3, 'etcdserver: key is not provided', 'ETOP_ETCD_REQUEST'],
  ])('%i %s → %s', (code, message, expected) => {
    expect(codeForGrpc(code, message)).toBe(expected);
  });
});
