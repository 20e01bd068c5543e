#!/usr/bin/env node
import { didYouMean } from '../../shared/did-you-mean.ts';
import { asCheckpointError, CheckpointError, fail } from '../errors.ts';
import { runDevicesCommand } from './devices-command.ts';
import { CONVERT_HELP, runConvert } from './convert-command.ts';
import { INSPECT_HELP, runInspect } from './inspect-command.ts';
import { runScan, SCAN_HELP } from './scan-command.ts';
import { processIO, type CliIO } from './io.ts';
import { VERSION } from '../version.ts';
import { tuneV8ForCli } from './v8-tuning.ts';

const HELP = `ckpt ${VERSION}: inspect, convert, re-shard and verify PyTorch checkpoints, without Python.

usage: ckpt <command> [options]

commands
  inspect <file> [--json]       what a checkpoint is: format, layout, tensors, security
  scan <file|folder> [--json]   what unpickling each file would run; exit 1 if anything would
  convert <file|folder> --preset cpu|gpu[:K]|dp|ddp [...]
                                convert the layout; every output is verified
  reshard <input...> --to single|ranks:N|dcp[:N]|shards[:SIZE] -o OUT
                                rank files, DCP folders, FSDP shards, shard sets, safetensors
  verify --model g.onnx --data <test set> <checkpoint> [--against <other>]
                                accuracy on a test set, and PASS/WARN/FAIL against the source
  fit <checkpoint> <target>     will it load into my model? torch's complaints and the rules that fix them
  diff <a> <b> [--json]         what changed between two checkpoints
  batch-status <folder>         progress of a folder conversion across shards and re-runs
  clean <folder>                remove temporary files that killed conversions left
  devices [--json]              this machine's GPUs and topology (nvidia-smi)
  serve [--port N] [--token T]  the app in a web browser (for a GPU server: open it through ssh -L)
  help [command]                this text, or a command's

Errors print one line and exit with code 2. Run \`ckpt <command> --help\` for details.`;

interface Command {
  run: (args: string[], io: CliIO) => Promise<number>;
  help: string;
  /** the command's full help (its options), loaded only to suggest a mistyped option */
  fullHelp?: () => Promise<string>;
}

const COMMANDS: Record<string, Command> = {
  inspect: { run: runInspect, help: INSPECT_HELP },
  scan: { run: runScan, help: SCAN_HELP },
  convert: { run: runConvert, help: CONVERT_HELP },
  devices: {
    run: (args, io) => runDevicesCommand(args, { stdout: io.stdout, stderr: io.stderr }),
    help: 'ckpt devices [--json]\n\nLists GPUs, memory, utilisation and the topology matrix from nvidia-smi.',
  },
  serve: {
    run: async (args, io) => (await import('./serve-command.ts')).runServe(args, io),
    help: 'ckpt serve [--port N] [--host 127.0.0.1] [--token T] [--allow-host NAME] [--no-open]\n\nServes the app to a web browser; prints the URL with its token. `ckpt serve --help` for more.',
    fullHelp: async () => (await import('./serve-command.ts')).SERVE_HELP,
  },
  verify: {
    run: async (args, io) => (await import('./verify-command.ts')).runVerifyCommand(args, io),
    help: "ckpt verify --model graph.onnx --data <test set> <checkpoint> [--against <other>]\n\nRuns the ONNX graph with the checkpoint's weights on a test set: accuracy, and a PASS/WARN/FAIL comparison. `ckpt verify --help` for more.",
    fullHelp: async () => (await import('./verify-command.ts')).VERIFY_HELP,
  },
  fit: {
    run: async (args, io) => (await import('./fit-command.ts')).runFit(args, io),
    help: 'ckpt fit <checkpoint> <target> [--json]\n\nWhat load_state_dict(strict=True) would say, the rules that make it load, and what it says after them. `ckpt fit --help` for more.',
  },
  diff: {
    run: async (args, io) => (await import('./diff-command.ts')).runDiff(args, io),
    help: 'ckpt diff <a> <b> [--json] [--exact-keys]\n\nWhat changed between two checkpoints, tensor by tensor. `ckpt diff --help` for more.',
  },
  'batch-status': {
    run: async (args, io) => (await import('./batch-status-command.ts')).runBatchStatus(args, io),
    help: 'ckpt batch-status <output folder> [--json]\n\nProgress of a folder conversion across every shard and re-run, from its journals. `ckpt batch-status --help` for more.',
  },
  clean: {
    run: async (args, io) => (await import('./clean-command.ts')).runClean(args, io),
    help: 'ckpt clean <folder> [--older-than 1h] [--dry-run]\n\nRemoves stale temporary files of killed conversions. `ckpt clean --help` for more.',
  },
  reshard: {
    run: async (args, io) => (await import('./reshard-command.ts')).runReshard(args, io),
    help: 'ckpt reshard <input...> --to single|ranks:N|dcp[:N]|shards[:SIZE] -o OUT\n\nRe-shards a checkpoint between rank files, DCP folders, shard sets and single torch or safetensors files; every output is verified. `ckpt reshard --help` for more.',
    fullHelp: async () => (await import('./reshard-command.ts')).RESHARD_HELP,
  },
};

/** For node:util's "Unknown option '--presett'": the command's closest option, from its help text. */
async function optionHint(message: string, cmd: string | undefined): Promise<string> {
  const unknown = /^Unknown option '(--?[\w-]+)/.exec(message)?.[1];
  const c = cmd ? COMMANDS[cmd] : undefined;
  if (!unknown || !c) return '';
  const help = c.fullHelp ? await c.fullHelp() : c.help;
  return didYouMean(unknown, [...new Set(help.match(/--[a-z][\w-]*/g) ?? [])]);
}

export async function main(argv: string[], io: CliIO): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    if (!cmd || cmd === 'help' || cmd === '--help' || cmd === '-h') {
      const topic = cmd === 'help' ? rest[0] : undefined;
      io.stdout((topic && COMMANDS[topic] ? COMMANDS[topic].help : HELP) + '\n');
      return 0;
    }
    if (cmd === '--version' || cmd === '-V') {
      io.stdout(VERSION + '\n');
      return 0;
    }
    const c = COMMANDS[cmd];
    if (!c) fail('usage', `unknown command '${cmd}'${didYouMean(cmd, Object.keys(COMMANDS))}; run \`ckpt help\` for the list`);
    return await c.run(rest, io);
  } catch (e) {
    const parseError = e instanceof TypeError && (e as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS');
    const err = parseError
      ? new CheckpointError('usage', `${e.message.split(/[.\n]/)[0]}${await optionHint(e.message, cmd)}; run \`ckpt help ${cmd}\``)
      : asCheckpointError(e);
    io.stderr(`ckpt: ${err.kind === 'usage' ? 'usage' : 'error'}: ${err.message}\n`);
    if (err.details) io.stderr(`details:\n${err.details.replace(/^/gm, '  ').trimEnd()}\n`);
    if (process.env['CKPT_DEBUG'] && e instanceof Error) io.stderr(`${e.stack}\n`);
    return 2;
  }
}

// Run when executed directly (the bundled dist/ckpt.js or `tsx main/cli/index.ts`).
const entry = process.argv[1] ?? '';
if (/(ckpt(\.js)?|cli[/\\]index\.ts)$/.test(entry)) {
  tuneV8ForCli();
  main(process.argv.slice(2), processIO()).then((code) => {
    process.exitCode = code;
  });
}
