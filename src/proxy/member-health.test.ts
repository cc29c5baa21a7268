import { describe, expect, it } from 'vitest';
import { frameMessage } from './grpc-frame.ts';
import { GrpcMessageReader, healthStatus } from './member-health.ts';

describe('gRPC health responses', () => {
  it.each([
    [[0x08, 0x01], 1],
    [[0x08, 0x02], 2],
    [[], 0],
    [[0x12, 0x00, 0x08, 0x02], 2], // an unknown field before the status
    [[0x08], undefined], // truncated
  ])('HealthCheckResponse %j has status %s', (bytes, status) => {
    expect(healthStatus(Uint8Array.from(bytes))).toBe(status);
  });

  it('reassembles messages split across and joined within DATA frames', () => {
    const reader = new GrpcMessageReader();
    const two = Buffer.concat([frameMessage(Uint8Array.from([0x08, 0x01])), frameMessage(Uint8Array.from([0x08, 0x02]))]);
    expect(reader.push(two.subarray(0, 3))).toEqual([]);
    expect(reader.push(two.subarray(3, 9)).map((m) => [...m])).toEqual([[0x08, 0x01]]);
    expect(reader.push(two.subarray(9)).map((m) => [...m])).toEqual([[0x08, 0x02]]);
    // A compressed message (flag 1) is skipped, not misread.
    expect(reader.push(Buffer.from([1, 0, 0, 0, 2, 0x08, 0x02]))).toEqual([]);
  });
});
