#!/usr/bin/env node
import { asCheckpointError, CheckpointError, fail } from '../errors.ts';
import { runDevicesCommand } from './devices-command.ts';
import { CONVERT_HELP, runConvert } from './convert-command.ts';
import { INSPECT_HELP, runInspect } from './inspect-command.ts';
import { processIO, type CliIO } from './io.ts';
import { VERSION } from '../version.ts';

const HELP = `ckpt ${VERSION}: inspect, convert, re-shard and verify PyTorch checkpoints, without Python.

usage: ckpt <command> [options]

commands
  inspect <file> [--json]       what a checkpoint is: format, layout, tensors, security
  convert <file|folder> --preset cpu|gpu[:K]|dp|ddp [...]
                                convert the layout; every output is verified
  reshard <input...> --to single|ranks:N|dcp[:N]|shards[:SIZE] -o OUT
                                rank files, DCP folders, FSDP shards, shard sets, safetensors
  verify --model g.onnx --data <test set> <checkpoint> [--against <other>]
                                accuracy on a test set, and PASS/WARN/FAIL against the source
  devices [--json]              this machine's GPUs and topology (nvidia-smi)
  help [command]                this text, or a command's

Errors print one line and exit with code 2. Run \`ckpt <command> --help\` for details.`;

const COMMANDS: Record<string, { run: (args: string[], io: CliIO) => Promise<number>; help: string }> = {
  inspect: { run: runInspect, help: INSPECT_HELP },
  convert: { run: runConvert, help: CONVERT_HELP },
  devices: {
    run: (args, io) => runDevicesCommand(args, { stdout: io.stdout, stderr: io.stderr }),
    help: 'ckpt devices [--json]\n\nLists GPUs, memory, utilisation and the topology matrix from nvidia-smi.',
  },
  serve: { run: async (args, io) => (await import('./serve-command.ts')).runServe(args, io), help: 'ckpt serve [--port N] [--host 127.0.0.1] [--no-open]\n\nServes the app to a web browser; prints the URL with its token. `ckpt serve --help` for more.' },
  verify: { run: async (args, io) => (await import('./verify-command.ts')).runVerifyCommand(args, io), help: 'ckpt verify --model graph.onnx --data <test set> <checkpoint> [--against <other>]\n\nRuns the ONNX graph with the checkpoint\'s weights on a test set: accuracy, and a PASS/WARN/FAIL comparison. `ckpt verify --help` for more.' },
  reshard: { run: async (args, io) => (await import('./reshard-command.ts')).runReshard(args, io), help: 'ckpt reshard <input...> --to single|ranks:N|dcp[:N]|shards[:SIZE] -o OUT\n\nRe-shards a checkpoint between rank files, DCP folders, shard sets and single torch or safetensors files; every output is verified. `ckpt reshard --help` for more.' },
};

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
    if (!c) fail('usage', `unknown command '${cmd}'; run \`ckpt help\` for the list`);
    return await c.run(rest, io);
  } catch (e) {
    const parseError = e instanceof TypeError && (e as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS');
    const err = parseError ? new CheckpointError('usage', `${e.message.split(/[.\n]/)[0]}; run \`ckpt help ${cmd}\``) : asCheckpointError(e);
    io.stderr(`ckpt: ${err.kind === 'usage' ? 'usage' : 'error'}: ${err.message}\n`);
    if (process.env['CKPT_DEBUG'] && e instanceof Error) io.stderr(`${e.stack}\n`);
    return 2;
  }
}

// Run when executed directly (the bundled dist/ckpt.js or `tsx main/cli/index.ts`).
const entry = process.argv[1] ?? '';
if (/(ckpt(\.js)?|cli[/\\]index\.ts)$/.test(entry)) {
  main(process.argv.slice(2), processIO()).then((code) => {
    process.exitCode = code;
  });
}
