import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { version } from './version.ts';

const root = path.resolve(import.meta.dirname, '..');
const read = (file: string): string => readFileSync(path.join(root, file), 'utf8');

describe('version', () => {
  it("is package.json's", () => {
    expect(version()).toBe((JSON.parse(read('package.json')) as { version: string }).version);
    expect(version()).toMatch(/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/);
  });

  it("refuses a package.json that is not this project's", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'etcd-topology-version-'));
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'other', version: '9.9.9' }));
    try {
      expect(() => version(path.join(dir, 'package.json'))).toThrow(/not etcd-topology's/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("agrees with the chart's appVersion", () => {
    expect((parse(read('deploy/etcd-topology/Chart.yaml')) as { appVersion: unknown }).appVersion).toBe(version());
  });

  it("agrees with the Dockerfile's image version label and build example", () => {
    const dockerfile = read('Dockerfile');
    const labels = [...dockerfile.matchAll(/org\.opencontainers\.image\.version="([^"]*)"/g)].map((m) => m[1]);
    expect(labels).toEqual([version()]);
    expect([...dockerfile.matchAll(/docker build -t etcd-topology:(\S+)/g)].map((m) => m[1])).toEqual([version()]);
  });
});
