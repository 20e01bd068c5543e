// A single-node Slurm cluster for the interop tests, started without systemd: a private munged
// (its own key and socket, run as the munge user), slurmctld -D -i and slurmd -D -N localhost,
// all on 127.0.0.1 with free ports and every state folder under one temporary folder. Stopped by
// PID. Not a test file itself.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface SlurmCluster {
  /** environment for sbatch, squeue, scancel, scontrol: SLURM_CONF points at this cluster */
  env: NodeJS.ProcessEnv;
  dir: string;
  stop(): Promise<void>;
}

const BINARIES = ['munged', 'slurmctld', 'slurmd', 'sbatch', 'squeue', 'scancel', 'scontrol', 'sinfo'];

function which(cmd: string): string | null {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function userIds(name: string): { uid: number; gid: number } | null {
  const u = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  return u.status === 0 && g.status === 0 ? { uid: Number(u.stdout), gid: Number(g.stdout) } : null;
}

async function stopProcess(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null || p.pid === undefined) return;
  const gone = new Promise<void>((res) => p.once('exit', () => res()));
  process.kill(p.pid, 'SIGTERM');
  if (await Promise.race([gone.then(() => true), sleep(5000).then(() => false)])) return;
  process.kill(p.pid, 'SIGKILL');
  await gone;
}

/**
 * Starts the cluster in `dir` (created here; every folder above it must be reachable by the munge
 * user), or returns why it cannot run here.
 */
export async function startSlurm(dir: string): Promise<SlurmCluster | string> {
  const missing = BINARIES.filter((b) => !which(b) && !existsSync(`/usr/sbin/${b}`));
  if (missing.length) return `${missing.join(', ')} not installed (apt-get install slurmctld slurmd slurm-client munge)`;
  if (process.getuid?.() !== 0) return 'not root: slurmd must run as root to start jobs';
  const munge = userIds('munge');
  if (!munge) return 'no munge user (the munge package creates it)';
  const started: ChildProcess[] = [];
  const stop = async (): Promise<void> => {
    for (const p of started.reverse()) await stopProcess(p);
  };
  const spawnDaemon = (cmd: string, args: string[], env: NodeJS.ProcessEnv, ids?: { uid: number; gid: number }): ChildProcess => {
    const log = join(dir, `${cmd.split('/').pop()}.out`);
    const p = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'], ...(ids ?? {}) });
    let text = '';
    const keep = (d: Buffer): void => {
      text += d.toString('utf8');
      writeFileSync(log, text);
    };
    p.stdout!.on('data', keep);
    p.stderr!.on('data', keep);
    started.push(p);
    return p;
  };
  try {
    mkdirSync(dir, { mode: 0o755 });
    chmodSync(dir, 0o755); // munged, as the munge user, must reach its socket folder (so must every folder above)
    const mungeDir = join(dir, 'munge');
    mkdirSync(mungeDir, { mode: 0o755 });
    chownSync(mungeDir, munge.uid, munge.gid);
    const key = join(mungeDir, 'munge.key');
    writeFileSync(key, randomBytes(1024), { mode: 0o400 });
    chownSync(key, munge.uid, munge.gid);
    const socket = join(mungeDir, 'munge.socket');
    const m = spawnDaemon(
      which('munged') ?? '/usr/sbin/munged',
      [
        '-F',
        `--socket=${socket}`,
        `--key-file=${key}`,
        `--pid-file=${join(mungeDir, 'munged.pid')}`,
        `--seed-file=${join(mungeDir, 'seed')}`,
        `--log-file=${join(mungeDir, 'munged.log')}`,
      ],
      process.env,
      munge,
    );
    for (let i = 0; i < 100 && !existsSync(socket) && m.exitCode === null; i++) await sleep(50);
    if (!existsSync(socket)) {
      await stop();
      return `munged did not start: ${tail(join(dir, 'munged.out'))}`;
    }
    for (const d of ['state', 'spool', 'log']) mkdirSync(join(dir, d));
    // the node's real hardware, as slurmd detects it, under the name localhost
    const probe = spawnSync('slurmd', ['-C'], { encoding: 'utf8' });
    const nodeLine = probe.stdout.split('\n').find((l) => l.startsWith('NodeName='));
    if (!nodeLine) {
      await stop();
      return `slurmd -C printed no node line: ${probe.stderr.trim()}`;
    }
    const [ctldPort, slurmdPort] = [await freePort(), await freePort()];
    const conf = join(dir, 'slurm.conf');
    writeFileSync(
      conf,
      [
        'ClusterName=ckpttest',
        'SlurmctldHost=localhost(127.0.0.1)',
        `SlurmctldPort=${ctldPort}`,
        `SlurmdPort=${slurmdPort}`,
        'AuthType=auth/munge',
        'CredType=cred/munge',
        `AuthInfo=socket=${socket}`,
        // bind to 127.0.0.1 only, never to every interface
        'CommunicationParameters=NoCtldInAddrAny,NoInAddrAny',
        'SlurmUser=root',
        'SlurmdUser=root',
        `StateSaveLocation=${join(dir, 'state')}`,
        `SlurmdSpoolDir=${join(dir, 'spool')}`,
        `SlurmctldPidFile=${join(dir, 'slurmctld.pid')}`,
        `SlurmdPidFile=${join(dir, 'slurmd.pid')}`,
        `SlurmctldLogFile=${join(dir, 'log', 'slurmctld.log')}`,
        `SlurmdLogFile=${join(dir, 'log', 'slurmd.log')}`,
        'ProctrackType=proctrack/linuxproc',
        'TaskPlugin=task/none',
        'JobAcctGatherType=jobacct_gather/none',
        'AccountingStorageType=accounting_storage/none',
        'JobCompType=jobcomp/none',
        'MpiDefault=none',
        'SwitchType=switch/none',
        'SelectType=select/cons_tres',
        'SelectTypeParameters=CR_Core',
        'ReturnToService=2',
        'PlugStackConfig=/dev/null',
        `${nodeLine.replace(/^NodeName=\S+/, 'NodeName=localhost NodeAddr=127.0.0.1').replace(/\s*UpTime=.*$/, '')} State=UNKNOWN`,
        'PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP',
        '',
      ].join('\n'),
    );
    const env = { ...process.env, SLURM_CONF: conf };
    const ctld = spawnDaemon('slurmctld', ['-D', '-i'], env);
    const slurmd = spawnDaemon('slurmd', ['-D', '-N', 'localhost'], env);
    let state = '';
    for (let i = 0; i < 200 && ctld.exitCode === null && slurmd.exitCode === null; i++) {
      state = spawnSync('sinfo', ['-h', '-o', '%T'], { env, encoding: 'utf8' }).stdout.trim();
      if (state === 'idle') break;
      await sleep(100);
    }
    if (state !== 'idle') {
      await stop();
      return `slurmctld/slurmd did not come up (node state '${state}'): ${tail(join(dir, 'slurmctld.out'))} ${tail(join(dir, 'slurmd.out'))}`;
    }
    return {
      env,
      dir,
      stop: async () => {
        spawnSync('scancel', ['--full', '--signal=KILL', '-u', 'root'], { env });
        for (let i = 0; i < 100 && spawnSync('squeue', ['-h'], { env, encoding: 'utf8' }).stdout.trim(); i++) await sleep(100);
        await stop();
      },
    };
  } catch (e) {
    await stop();
    return `could not start Slurm: ${(e as Error).message}`;
  }
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-3).join(' | ');
  } catch {
    return '(no output)';
  }
}

/** Submits a batch script; returns the job id. */
export function sbatch(cluster: SlurmCluster, args: string[], env: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync('sbatch', ['--parsable', ...args], { env: { ...cluster.env, ...env }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`sbatch failed: ${r.stderr.trim()}`);
  return r.stdout.trim().split(';')[0]!;
}

/** The array tasks of a job still queued or running. */
export function activeTasks(cluster: SlurmCluster, job: string): string[] {
  const r = spawnSync('squeue', ['-h', '-r', '-j', job, '-o', '%i %T'], { env: cluster.env, encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean);
}

export async function waitForJob(cluster: SlurmCluster, job: string, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  while (activeTasks(cluster, job).length) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`job ${job} still running after ${timeoutMs} ms: ${activeTasks(cluster, job).join(', ')}`);
    await sleep(200);
  }
}

/** Each array task's final state and exit code, from the controller's job records. */
export function taskResults(cluster: SlurmCluster, job: string): Map<number, { state: string; exit: string }> {
  const r = spawnSync('scontrol', ['show', 'job', '-o', job], { env: cluster.env, encoding: 'utf8' });
  const out = new Map<number, { state: string; exit: string }>();
  for (const line of r.stdout.split('\n')) {
    const task = /ArrayTaskId=(\d+)/.exec(line);
    if (!task) continue;
    out.set(Number(task[1]), { state: /JobState=(\S+)/.exec(line)?.[1] ?? '?', exit: /ExitCode=(\S+)/.exec(line)?.[1] ?? '?' });
  }
  return out;
}
