import type { V1Container, V1ContainerState, V1ContainerStatus, V1PodCondition, V1Probe } from '@kubernetes/client-node';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { hostsFor, type DnsView } from './dns.ts';
import { expandVars, resolveCommand, type ImageMapping } from './images.ts';
import type { KubeRest } from './kube-rest.ts';
import { containerEnv, PodConfigError } from './pod-env.ts';
import { probeOnce, runWithTimeout, unsupportedProbe } from './probes.ts';
import { alive, spawnLogged, terminate } from './processes.ts';
import type { Pod } from './types.ts';
import { prepareVolume, type PreparedVolume } from './volumes.ts';

/** What a pod runner needs from its node agent. */
export interface PodRunnerDeps {
  api: KubeRest;
  images: ImageMapping[];
  node: { name: string; ip: string; dir: string };
  apiserverPort: number;
  podIP: (pod: Pod) => string;
  dnsView: () => DnsView;
  event: (pod: Pod, type: 'Normal' | 'Warning', reason: string, message: string) => void;
  /** One line for the node agent's log (what the pod waits on, what failed). */
  log: (line: string) => void;
}

interface ContainerRun {
  spec: V1Container;
  init: boolean;
  child?: ChildProcess;
  restartCount: number;
  ready: boolean;
  started: boolean;
  state: V1ContainerState;
  lastState?: V1ContainerState;
  startedAt?: number;
  backoffMs: number;
  timers: NodeJS.Timeout[];
  env: Record<string, string>;
  /** The last bytes the current run wrote to stdout and stderr, for a FallbackToLogsOnError message. */
  tail?: Buffer;
  /** The file bind-mounted at terminationMessagePath for the current run. */
  messageFile?: string;
}

/** What the kubelet keeps of a failed container's log for its termination message. */
const TERMINATION_MESSAGE_BYTES = 2048;
const TERMINATION_MESSAGE_LINES = 80;

/**
 * The termination message of terminationMessagePolicy FallbackToLogsOnError, as the kubelet makes it
 * when there is no termination message file: the end of the log, at most 80 lines and 2048 bytes.
 */
export function logTailMessage(tail: Buffer): string {
  const lines = tail.subarray(-TERMINATION_MESSAGE_BYTES).toString('utf8').replace(/\n$/, '').split('\n');
  return lines.slice(-TERMINATION_MESSAGE_LINES).join('\n');
}

const BASE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const quote = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`;
const now = (): string => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

/**
 * Runs one pod's containers as local processes, each in its own mount namespace (its own /etc/hosts
 * and volume mounts), and reports the pod's status the way the kubelet would.
 */
export class PodRunner {
  pod: Pod;
  private readonly deps: PodRunnerDeps;
  private readonly dir: string;
  private readonly hostsFile: string;
  private readonly containers = new Map<string, ContainerRun>();
  private volumes = new Map<string, PreparedVolume>();
  private terminating = false;
  private stopped = false;
  private failure: { reason: string; message: string } | undefined;
  private initialized = false;
  private volumesReady = false;
  private readonly transitions = new Map<string, { status: string; time: string }>();
  private lastStatus = '';
  private loggedSummary = '';
  private statusQueued = false;
  private statusDirty = false;
  private refreshTimer: NodeJS.Timeout | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  private startTime = now();

  constructor(pod: Pod, deps: PodRunnerDeps) {
    this.pod = pod;
    this.deps = deps;
    this.dir = path.join(deps.node.dir, 'pods', pod.metadata.uid ?? pod.metadata.name);
    this.hostsFile = path.join(this.dir, 'hosts');
    const prior = new Map((pod.status?.containerStatuses ?? []).map((s) => [s.name, s]));
    const priorInit = new Map((pod.status?.initContainerStatuses ?? []).map((s) => [s.name, s]));
    for (const [spec, init] of [...(pod.spec?.initContainers ?? []).map((c) => [c, true] as const), ...(pod.spec?.containers ?? []).map((c) => [c, false] as const)]) {
      const before = (init ? priorInit : prior).get(spec.name);
      // A pod adopted after a node restart: its containers ran before, so this start is a restart.
      const restartCount = before ? before.restartCount + (before.state?.running || before.state?.terminated ? 1 : 0) : 0;
      this.containers.set(spec.name, {
        spec,
        init,
        restartCount,
        ready: false,
        started: false,
        state: { waiting: { reason: 'ContainerCreating' } },
        lastState: before?.state?.running ? { terminated: { exitCode: 137, reason: 'NodeRestart', startedAt: before.state.running.startedAt, finishedAt: new Date() } } : undefined,
        backoffMs: 1000,
        timers: [],
        env: {},
      });
    }
    if (pod.status?.startTime) this.startTime = new Date(pod.status.startTime).toISOString().replace(/\.\d+Z$/, 'Z');
  }

  /** Prepares the pod and starts its containers; failures become the pod's status, never a throw. */
  async start(): Promise<void> {
    try {
      this.checkSupported();
      await mkdir(this.dir, { recursive: true });
      this.pod.status = { ...this.pod.status, podIP: this.deps.podIP(this.pod), hostIP: this.deps.node.ip };
      await this.writeHosts();
      this.queueStatus();
      for (const volume of this.pod.spec?.volumes ?? []) {
        const prepared = await this.retrying(() => prepareVolume({ api: this.deps.api, pod: this.pod, podDir: this.dir, nodeDir: this.deps.node.dir }, volume));
        if (!prepared) return;
        this.volumes.set(volume.name, prepared);
      }
      this.volumesReady = true;
      this.deps.log(`volumes ready: ${[...this.volumes.keys()].join(', ') || 'none'}`);
      this.scheduleRefresh();
      // Like the kubelet's periodic sync: re-derive the status every few seconds; writeStatus sends
      // nothing when it is unchanged, and a write that was lost is made good.
      this.statusTimer = setInterval(() => this.queueStatus(), 5000);
      this.statusTimer.unref();
      for (const c of this.containers.values()) if (c.init) await this.runInit(c);
      if (this.stopped || this.terminating) return;
      this.initialized = true;
      for (const c of this.containers.values()) if (!c.init) await this.launch(c);
    } catch (err) {
      this.deps.log(`start failed: ${err instanceof PodConfigError ? err.reason : 'StartError'}: ${err instanceof Error ? err.message : String(err)}`);
      if (err instanceof PodConfigError && err.reason !== 'ContainerCreating') this.fail(err.reason, err.message);
      else this.fail('StartError', err instanceof Error ? err.message : String(err));
    }
  }

  /** Takes the newest pod object from the watch: readiness gates may have changed, or deletion begun. */
  update(pod: Pod): void {
    if (this.stopped) return;
    this.pod = { ...pod, status: { ...pod.status, podIP: this.pod.status?.podIP, hostIP: this.pod.status?.hostIP } };
    if (pod.metadata.deletionTimestamp && !this.terminating) void this.terminate();
    else this.queueStatus();
  }

  /** Rewrites the pod's hosts file in place (bind mounts keep the inode), when it changed. */
  async writeHosts(): Promise<void> {
    if (this.stopped) return;
    const content = hostsFor(this.pod, this.deps.node.name, this.deps.dnsView());
    await mkdir(this.dir, { recursive: true });
    await writeFile(this.hostsFile, content);
  }

  /** Kills every process at once and forgets the pod without touching the API: the node died. */
  async kill(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.refreshTimer);
    clearInterval(this.statusTimer);
    for (const c of this.containers.values()) {
      for (const t of c.timers) clearTimeout(t);
      await terminate(c.child, 0, 'SIGKILL');
    }
  }

  /** Graceful deletion: SIGTERM, wait the grace period, SIGKILL, then remove the pod object. */
  async terminate(): Promise<void> {
    if (this.terminating || this.stopped) return;
    this.terminating = true;
    clearTimeout(this.refreshTimer);
    clearInterval(this.statusTimer);
    const graceSeconds = this.pod.metadata.deletionTimestamp
      ? ((this.pod.metadata as { deletionGracePeriodSeconds?: number }).deletionGracePeriodSeconds ?? this.pod.spec?.terminationGracePeriodSeconds ?? 30)
      : (this.pod.spec?.terminationGracePeriodSeconds ?? 30);
    this.deps.event(this.pod, 'Normal', 'Killing', `Stopping containers with grace period ${graceSeconds}s`);
    await Promise.all(
      [...this.containers.values()].map(async (c) => {
        for (const t of c.timers) clearTimeout(t);
        c.ready = false;
        await terminate(c.child, graceSeconds * 1000);
      }),
    );
    this.stopped = true;
    const ns = this.pod.metadata.namespace ?? 'default';
    await this.deps.api
      .call('DELETE', `/api/v1/namespaces/${ns}/pods/${this.pod.metadata.name}`, {
        apiVersion: 'v1',
        kind: 'DeleteOptions',
        gracePeriodSeconds: 0,
        preconditions: { uid: this.pod.metadata.uid },
      })
      .catch(() => undefined);
  }

  private checkSupported(): void {
    for (const c of [...(this.pod.spec?.initContainers ?? []), ...(this.pod.spec?.containers ?? [])]) {
      for (const probe of [c.readinessProbe, c.livenessProbe, c.startupProbe]) {
        const why = unsupportedProbe(probe);
        if (why) throw new PodConfigError('UnsupportedProbe', `container ${c.name}: ${why}`);
      }
      if ((c as { restartPolicy?: string }).restartPolicy === 'Always') {
        throw new PodConfigError('UnsupportedSidecar', `init container ${c.name}: sidecar init containers (restartPolicy Always) are not supported by the local cluster`);
      }
    }
  }

  /** Retries a preparation step while its error is transient (a claim not bound yet). */
  private async retrying<T>(step: () => Promise<T>): Promise<T | undefined> {
    let lastWhy = '';
    for (let delay = 200; ; delay = Math.min(delay * 2, 2000)) {
      if (this.stopped || this.terminating) return undefined;
      try {
        return await step();
      } catch (err) {
        if (!(err instanceof PodConfigError) || err.reason !== 'ContainerCreating') throw err;
        // Logged when the reason changes, not on every retry.
        if (err.message !== lastWhy) this.deps.log(`waiting: ${err.message}`);
        lastWhy = err.message;
        this.queueStatus();
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  private fail(reason: string, message: string): void {
    this.failure = { reason, message };
    for (const c of this.containers.values()) if (!alive(c.child)) c.state = { waiting: { reason, message } };
    this.deps.event(this.pod, 'Warning', reason, message);
    this.queueStatus();
  }

  private async runInit(c: ContainerRun): Promise<void> {
    for (;;) {
      if (this.stopped || this.terminating) return;
      const code = await new Promise<number>((resolve) => {
        void this.launch(c, resolve);
      });
      this.deps.log(`init container ${c.spec.name} exited with ${code}`);
      if (code === 0) return;
      if (this.pod.spec?.restartPolicy === 'Never') {
        this.fail('InitContainerFailed', `init container ${c.spec.name} exited with ${code}`);
        throw new PodConfigError('InitContainerFailed', `init container ${c.spec.name} exited with ${code}`);
      }
      await new Promise((r) => setTimeout(r, c.backoffMs));
      c.backoffMs = Math.min(c.backoffMs * 2, 20_000);
    }
  }

  /** Starts one container process; onExit (init containers) receives its exit code instead of the restart policy. */
  private async launch(c: ContainerRun, onExit?: (code: number) => void): Promise<void> {
    if (this.stopped || this.terminating) return;
    const pod = this.pod;
    const base: Record<string, string> = {
      PATH: BASE_PATH,
      HOSTNAME: pod.spec?.hostname ?? pod.metadata.name,
      HOME: '/root',
      KUBERNETES_SERVICE_HOST: '127.0.0.1',
      KUBERNETES_SERVICE_PORT: String(this.deps.apiserverPort),
      KUBERNETES_SERVICE_PORT_HTTPS: String(this.deps.apiserverPort),
    };
    let argv: string[];
    try {
      c.env = await containerEnv(this.deps.api, pod, c.spec, base);
      const resolved = resolveCommand(
        this.deps.images,
        c.spec.image ?? '',
        c.spec.command?.map((s) => expandVars(s, c.env)),
        c.spec.args?.map((s) => expandVars(s, c.env)),
      );
      if (!resolved.ok) throw new PodConfigError(resolved.reason, resolved.message);
      argv = resolved.argv;
      // The image's ENV sits below the container's own env, as in a container runtime.
      c.env = { ...(resolved.env ?? {}), ...c.env };
    } catch (err) {
      const e = err instanceof PodConfigError ? err : new PodConfigError('CreateContainerConfigError', String(err));
      this.fail(e.reason, e.message);
      return;
    }
    // The termination message file, as the kubelet mounts it; what the container writes there becomes
    // its termination message. The mount point is created once on the machine if missing (/dev is shared).
    const messagePath = c.spec.terminationMessagePath ?? '/dev/termination-log';
    c.messageFile = path.join(this.dir, `${c.spec.name}.termination-log`);
    await writeFile(c.messageFile, '');
    const script = [
      'set -e',
      `mount --bind ${quote(this.hostsFile)} /etc/hosts`,
      `[ -e ${quote(messagePath)} ] || { mkdir -p ${quote(path.dirname(messagePath))} && touch ${quote(messagePath)}; }`,
      `mount --bind ${quote(c.messageFile)} ${quote(messagePath)}`,
    ];
    for (const m of c.spec.volumeMounts ?? []) {
      const v = this.volumes.get(m.name);
      if (!v) {
        this.fail('CreateContainerConfigError', `container ${c.spec.name} mounts unknown volume "${m.name}"`);
        return;
      }
      const src = m.subPath ? path.join(v.dir, m.subPath) : v.dir;
      if (m.subPath) await mkdir(src, { recursive: true });
      try {
        await keepMountPoint(m.mountPath);
      } catch (err) {
        this.fail('RunContainerError', `container ${c.spec.name}: cannot make mount point ${m.mountPath}: ${err instanceof Error ? err.message : String(err)}`);
        return;
      }
      script.push(`mount --bind ${quote(src)} ${quote(m.mountPath)}`);
      if (m.readOnly) script.push(`mount -o remount,bind,ro ${quote(m.mountPath)}`);
    }
    if (c.spec.workingDir) script.push(`mkdir -p ${quote(c.spec.workingDir)}`, `cd ${quote(c.spec.workingDir)}`);
    script.push('exec "$@"');
    // The node may have been stopped, or the pod deleted, while the environment was being resolved.
    if (this.stopped || this.terminating) return;
    const child = spawnLogged('unshare', ['--mount', '--propagation', 'private', '/bin/sh', '-c', script.join('\n'), 'sh', ...argv], path.join(this.dir, `${c.spec.name}.log`), {
      env: c.env,
      cwd: '/',
    });
    c.child = child;
    c.tail = Buffer.alloc(0);
    const keep = (chunk: Buffer): void => {
      c.tail = Buffer.concat([c.tail ?? Buffer.alloc(0), chunk]).subarray(-TERMINATION_MESSAGE_BYTES);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    c.startedAt = Date.now();
    c.state = { running: { startedAt: new Date(c.startedAt) } };
    c.started = !c.spec.startupProbe;
    c.ready = false;
    this.deps.event(pod, 'Normal', 'Started', `Started container ${c.spec.name}`);
    // 'close' comes after the output pipes drained, so the log tail is complete.
    child.once('close', (code, signal) => this.exited(c, child, code ?? (signal ? 128 + signalNumber(signal) : 1), onExit));
    if (!c.init) this.startProbes(c);
    this.queueStatus();
  }

  private exited(c: ContainerRun, child: ChildProcess, code: number, onExit?: (code: number) => void): void {
    if (c.child !== child) return;
    if (!c.init) this.deps.log(`container ${c.spec.name} exited with ${code}`);
    for (const t of c.timers) clearTimeout(t);
    c.timers = [];
    c.ready = false;
    // The kubelet reads at most 4096 bytes of the message file; only an empty one falls back to the logs.
    const written = readMessageFile(c.messageFile);
    const fallback = written === '' && code !== 0 && c.spec.terminationMessagePolicy === 'FallbackToLogsOnError' && c.tail !== undefined && c.tail.length > 0;
    const terminated = {
      exitCode: code,
      reason: code === 0 ? 'Completed' : 'Error',
      startedAt: new Date(c.startedAt ?? Date.now()),
      finishedAt: new Date(),
      ...(written !== '' ? { message: written } : fallback ? { message: logTailMessage(c.tail!) } : {}),
    };
    if (this.stopped) return;
    if (onExit) {
      c.state = { terminated };
      this.queueStatus();
      onExit(code);
      return;
    }
    if (this.terminating) {
      c.state = { terminated };
      return;
    }
    const policy = this.pod.spec?.restartPolicy ?? 'Always';
    if (policy === 'Never' || (policy === 'OnFailure' && code === 0)) {
      c.state = { terminated };
      this.queueStatus();
      return;
    }
    // A container that ran a while starts over with a short back-off; a crash loop backs off further.
    if (Date.now() - (c.startedAt ?? 0) > 30_000) c.backoffMs = 1000;
    c.lastState = { terminated };
    c.state = { waiting: { reason: 'CrashLoopBackOff', message: `back-off ${c.backoffMs / 1000}s restarting failed container ${c.spec.name}` } };
    this.deps.event(this.pod, 'Warning', 'BackOff', `Back-off restarting container ${c.spec.name} (exit ${code})`);
    this.queueStatus();
    c.timers.push(
      setTimeout(() => {
        c.restartCount++;
        void this.launch(c);
      }, c.backoffMs),
    );
    c.backoffMs = Math.min(c.backoffMs * 2, 20_000);
  }

  private startProbes(c: ContainerRun): void {
    const target = {
      podIP: this.pod.status?.podIP ?? '127.0.0.1',
      container: c.spec,
      exec: (argv: string[], timeoutMs: number): Promise<number> => {
        const pid = c.child?.pid;
        const resolved = resolveCommand(this.deps.images, c.spec.image ?? '', argv, []);
        if (pid === undefined || !resolved.ok) return Promise.resolve(-1);
        return runWithTimeout(['nsenter', '-t', String(pid), '-m', '--', ...resolved.argv], c.env, timeoutMs);
      },
    };
    const loop = (probe: V1Probe, kind: 'startup' | 'liveness' | 'readiness'): void => {
      let successes = 0;
      let failures = 0;
      let inFlight = false;
      let done = false;
      const child = c.child;
      const periodMs = (probe.periodSeconds ?? 10) * 1000;
      // A hard bound on one attempt, so that nothing a probe awaits can stall the loop.
      const attemptMs = (probe.timeoutSeconds ?? 1) * 1000 + 2000;
      const tick = async (): Promise<void> => {
        // Each loop belongs to one process of the container; a restarted container gets new loops.
        if (done || inFlight || this.stopped || this.terminating || c.child !== child || !alive(child)) return;
        if (kind !== 'startup' && !c.started) return;
        inFlight = true;
        let timer: NodeJS.Timeout | undefined;
        const ok = await Promise.race([
          probeOnce(probe, target),
          new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), attemptMs))),
        ]).finally(() => {
          clearTimeout(timer);
          inFlight = false;
        });
        if (done || c.child !== child) return;
        if (ok) {
          failures = 0;
          successes++;
        } else {
          successes = 0;
          failures++;
        }
        if (kind === 'startup') {
          if (ok) {
            c.started = true;
            done = true;
            this.queueStatus();
            return;
          }
        } else if (kind === 'readiness') {
          if (ok && successes >= (probe.successThreshold ?? 1) && !c.ready) {
            c.ready = true;
            this.queueStatus();
          } else if (!ok && failures >= (probe.failureThreshold ?? 3) && c.ready) {
            c.ready = false;
            this.queueStatus();
          }
        }
        if (!ok && kind !== 'readiness' && failures >= (probe.failureThreshold ?? 3)) {
          done = true;
          this.deps.event(this.pod, 'Warning', 'Unhealthy', `${kind} probe failed ${failures} times; restarting container ${c.spec.name}`);
          void terminate(child, (this.pod.spec?.terminationGracePeriodSeconds ?? 30) * 1000);
        }
      };
      // One timer per probe for the life of the process: the first attempt after the initial delay
      // (as soon as the container has started, for liveness and readiness), then every period.
      c.timers.push(
        setTimeout(() => {
          void tick();
          let lastAttempt = Date.now();
          const interval = setInterval(() => {
            if (done || c.child !== child) return clearInterval(interval);
            // Until started, look often; afterwards, every period.
            if (kind !== 'startup' && !c.started) return;
            if (Date.now() - lastAttempt < periodMs - 100 && !(kind !== 'startup' && successes === 0 && failures === 0)) return;
            lastAttempt = Date.now();
            void tick();
          }, 200);
          c.timers.push(interval);
        }, (probe.initialDelaySeconds ?? 0) * 1000),
      );
    };
    if (c.spec.startupProbe) loop(c.spec.startupProbe, 'startup');
    if (c.spec.livenessProbe) loop(c.spec.livenessProbe, 'liveness');
    if (c.spec.readinessProbe) loop(c.spec.readinessProbe, 'readiness');
    else {
      // No readiness probe: ready once started.
      const whenStarted = (): void => {
        if (!alive(c.child) || this.stopped) return;
        if (c.started) {
          c.ready = true;
          this.queueStatus();
        } else c.timers.push(setTimeout(whenStarted, 200));
      };
      whenStarted();
    }
  }

  private scheduleRefresh(): void {
    const next = Math.min(...[...this.volumes.values()].map((v) => v.refreshAt ?? Infinity));
    if (!Number.isFinite(next)) return;
    this.refreshTimer = setTimeout(
      () => {
        // Only the volumes that are due: a Secret volume syncs every few seconds, a token at 80% of its life.
        void Promise.all([...this.volumes.values()].filter((v) => (v.refreshAt ?? Infinity) <= Date.now() + 50).map((v) => (v.refresh ? v.refresh() : Promise.resolve())))
          .catch(() => undefined)
          .then(() => this.scheduleRefresh());
      },
      Math.max(1000, next - Date.now()),
    );
  }

  private condition(type: string, ok: boolean, reason?: string): V1PodCondition {
    const status = ok ? 'True' : 'False';
    const prior = this.transitions.get(type);
    const time = prior && prior.status === status ? prior.time : now();
    this.transitions.set(type, { status, time });
    // A strategic merge keeps fields of the condition it merges into, so a reason that no longer
    // applies is sent as null to remove it.
    return { type, status, lastTransitionTime: new Date(time), reason: (reason && !ok ? reason : null) as string | undefined };
  }

  /** Coalesces status writes: at most one in flight, always of the newest state. */
  /**
   * Asks for a status write. Writes go one at a time, in order: two PATCHes in flight at once can land
   * out of order, and the older one would then stay in the API while lastStatus says the newer one was
   * written (a container that never shows ready although its probe passes).
   */
  private queueStatus(): void {
    if (this.stopped) return;
    this.statusDirty = true;
    if (this.statusQueued) return;
    this.statusQueued = true;
    setImmediate(() => void this.flushStatus());
  }

  private async flushStatus(): Promise<void> {
    try {
      while (this.statusDirty && !this.stopped) {
        this.statusDirty = false;
        await this.writeStatus();
      }
    } finally {
      this.statusQueued = false;
    }
  }

  private async writeStatus(): Promise<void> {
    if (this.stopped) return;
    const regular = [...this.containers.values()].filter((c) => !c.init);
    const init = [...this.containers.values()].filter((c) => c.init);
    const toStatus = (c: ContainerRun): V1ContainerStatus => ({
      name: c.spec.name,
      image: c.spec.image ?? '',
      imageID: '',
      containerID: c.child?.pid ? `local://${c.child.pid}` : undefined,
      ready: c.ready,
      started: c.init ? undefined : c.started && alive(c.child),
      restartCount: c.restartCount,
      state: c.state,
      lastState: c.lastState ?? {},
    });
    const allTerminated = regular.every((c) => c.state.terminated);
    let phase = 'Pending';
    if (this.failure && ['UnsupportedImage', 'UnsupportedCommand', 'UnsupportedVolume', 'UnsupportedProbe', 'UnsupportedSidecar', 'InitContainerFailed', 'StartError'].includes(this.failure.reason)) phase = 'Failed';
    else if (allTerminated && regular.length > 0) phase = regular.every((c) => c.state.terminated?.exitCode === 0) ? 'Succeeded' : 'Failed';
    // As the kubelet: once a container has run, the pod stays Running while it restarts.
    else if (this.initialized && regular.some((c) => c.state.running || c.restartCount > 0 || c.lastState?.terminated)) phase = 'Running';
    const containersReady = this.initialized && regular.every((c) => c.ready);
    const gates = (this.pod.spec?.readinessGates ?? []).map((g) => g.conditionType);
    const gatesTrue = gates.every((g) => this.pod.status?.conditions?.find((x) => x.type === g)?.status === 'True');
    const conditions = [
      this.condition('PodReadyToStartContainers', this.volumesReady),
      this.condition('Initialized', this.initialized, 'ContainersNotInitialized'),
      this.condition('ContainersReady', containersReady, 'ContainersNotReady'),
      this.condition('Ready', containersReady && gatesTrue, containersReady ? 'ReadinessGatesNotReady' : 'ContainersNotReady'),
    ];
    const status = {
      phase,
      ...(this.failure && phase === 'Failed' ? { reason: this.failure.reason, message: this.failure.message } : {}),
      hostIP: this.deps.node.ip,
      hostIPs: [{ ip: this.deps.node.ip }],
      podIP: this.pod.status?.podIP,
      podIPs: this.pod.status?.podIP ? [{ ip: this.pod.status.podIP }] : [],
      startTime: this.startTime,
      conditions,
      containerStatuses: regular.map(toStatus),
      ...(init.length > 0 ? { initContainerStatuses: init.map(toStatus) } : {}),
    };
    const serialized = JSON.stringify(status);
    if (serialized === this.lastStatus) return;
    this.lastStatus = serialized;
    const summary = `${phase}${containersReady ? ' containers-ready' : ''}${containersReady && gatesTrue ? ' ready' : ''}`;
    if (summary !== this.loggedSummary) this.deps.log(`status ${summary}`);
    this.loggedSummary = summary;
    const ns = this.pod.metadata.namespace ?? 'default';
    await this.deps.api
      .call('PATCH', `/api/v1/namespaces/${ns}/pods/${this.pod.metadata.name}/status`, { status }, 'application/strategic-merge-patch+json')
      .catch((err: unknown) => {
        // Lost to a race or a busy API server: write it again shortly, or the pod could keep a stale
        // status (a container that never shows ready) until something else changes.
        this.deps.log(`status write failed (retried in 1 s): ${err instanceof Error ? err.message : String(err)}`);
        this.lastStatus = '';
        if (!this.stopped) setTimeout(() => this.queueStatus(), 1000).unref();
      });
  }
}

/** What keepMountPoint leaves in a mount point on the machine. */
export const MOUNT_POINT_MARKER = '.etcd-topology-mount-point';

/**
 * Makes sure the directory a container's mount is bound on exists on the machine and cannot be
 * removed while in use: on Linux, removing a directory detaches whatever is mounted on it in every
 * other mount namespace, so an empty mount point that anything on the machine removes (another local
 * cluster stopping, from a checkout older than this) would unmount that volume from this cluster's
 * running containers. An empty mount point gets a marker file, which makes rmdir fail; inside the
 * container the mount hides it. Mount points stay on the machine (see NodeAgent.stop).
 */
async function keepMountPoint(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  if ((await readdir(dir)).length > 0) return;
  await writeFile(path.join(dir, MOUNT_POINT_MARKER), 'a mount point of the etcd-topology local cluster (test/harness/cluster), kept so that no rmdir detaches its mounts\n', { flag: 'wx' }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
}

function readMessageFile(file: string | undefined): string {
  if (file === undefined) return '';
  try {
    return readFileSync(file).subarray(0, 4096).toString('utf8');
  } catch {
    return '';
  }
}

function signalNumber(signal: NodeJS.Signals): number {
  return ({ SIGKILL: 9, SIGTERM: 15, SIGINT: 2, SIGHUP: 1, SIGABRT: 6, SIGSEGV: 11 } as Record<string, number>)[signal] ?? 1;
}
