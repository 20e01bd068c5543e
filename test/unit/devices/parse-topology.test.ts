import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { linkRank, type Topology } from '../../../shared/devices.ts';
import { defaultLegend, parseLinkCell, parseTopology } from '../../../main/devices/parse-topology.ts';
import { crlf, fixture } from './helpers.ts';

function topo(name: string): Topology {
  const t = parseTopology(fixture(name));
  assert.ok(t, `${name} parses`);
  return t;
}

const link = (t: Topology, a: number, b: number) => t.links.find((l) => l.a === a && l.b === b);

describe('nvidia-smi topo -m: 8x A100-SXM4 with NVLink and NICs (FastDeploy collect-env)', () => {
  const t = topo('topo-a100-sxm4-40gb-8-nic.txt');

  it('links every pair of the 8 GPUs, all NV12', () => {
    assert.deepEqual(t.gpus, [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.equal(t.links.length, 28);
    const l01 = link(t, 0, 1)!;
    assert.deepEqual({ type: l01.type, nvlinks: l01.nvlinks, label: l01.label, rank: l01.rank }, { type: 'NV', nvlinks: 12, label: 'NV12', rank: 112 });
    assert.equal(l01.meaning, 'Connection traversing a bonded set of 12 NVLinks');
    assert.ok(t.links.every((l) => l.label === 'NV12'));
  });

  it('reads NIC rows through the NIC Legend', () => {
    assert.deepEqual(t.nicLegend, [
      { nic: 'NIC0', device: 'mlx5_0' },
      { nic: 'NIC1', device: 'mlx5_1' },
      { nic: 'NIC2', device: 'mlx5_2' },
    ]);
    assert.deepEqual(
      t.nics.map((n) => [n.label, n.device]),
      [
        ['NIC0', 'mlx5_0'],
        ['NIC1', 'mlx5_1'],
        ['NIC2', 'mlx5_2'],
      ],
    );
    assert.deepEqual(
      t.nics[0]!.gpus.map((g) => g.label),
      ['PXB', 'PXB', 'SYS', 'SYS', 'SYS', 'SYS', 'SYS', 'SYS'],
    );
    assert.equal(t.nics[1]!.gpus[2]!.type, 'NODE');
    assert.equal(t.nics[2]!.gpus[3]!.type, 'PXB');
  });

  it('reads CPU and NUMA affinity per GPU', () => {
    assert.deepEqual(t.affinity[0], { gpu: 0, cpuAffinity: '0-19,80-99', numaAffinity: '0', gpuNumaId: null });
    assert.deepEqual(t.affinity[3], { gpu: 3, cpuAffinity: '20-39,100-119', numaAffinity: '1', gpuNumaId: null });
    assert.deepEqual(t.affinity[7], { gpu: 7, cpuAffinity: '60-79,140-159', numaAffinity: '3', gpuNumaId: null });
  });

  it('keeps the printed legend and the matrix for display', () => {
    assert.equal(t.legend.length, 7);
    assert.deepEqual(
      t.legend.find((e) => e.code === 'PIX'),
      { code: 'PIX', meaning: 'Connection traversing at most a single PCIe bridge' },
    );
    assert.deepEqual(t.matrix.columns.slice(-3), ['NIC2', 'CPU Affinity', 'NUMA Affinity']);
    assert.deepEqual(t.matrix.rows[8], { label: 'NIC0', cells: ['PXB', 'PXB', 'SYS', 'SYS', 'SYS', 'SYS', 'SYS', 'SYS', 'X', 'SYS', 'SYS', '', ''] });
  });

  it("matches nvidia-smi's legend text, which the app also carries for captures without one", () => {
    assert.deepEqual(defaultLegend(), t.legend);
  });
});

describe('nvidia-smi topo -m: 4x GTX TITAN X over PCIe, old mlx4 NIC naming', () => {
  const t = topo('topo-gtx-titan-x-4-mlx4.txt');

  it('reads PHB within a socket and SYS across', () => {
    assert.equal(link(t, 0, 1)!.type, 'PHB');
    assert.equal(link(t, 2, 3)!.type, 'PHB');
    assert.equal(link(t, 0, 2)!.type, 'SYS');
    assert.equal(link(t, 1, 3)!.label, 'SYS');
    assert.equal(link(t, 0, 1)!.meaning, 'Connection traversing PCIe as well as a PCIe Host Bridge (typically the CPU)');
  });

  it('treats mlx4_0 / mlx4_1 rows as NICs named by themselves (no NIC Legend)', () => {
    assert.deepEqual(t.nicLegend, []);
    assert.deepEqual(
      t.nics.map((n) => n.device),
      ['mlx4_0', 'mlx4_1'],
    );
    assert.deepEqual(
      t.nics[0]!.gpus.map((g) => g.label),
      ['PHB', 'PHB', 'SYS', 'SYS'],
    );
    assert.deepEqual(
      t.affinity.map((a) => [a.cpuAffinity, a.numaAffinity]),
      [
        ['0-5', '0'],
        ['0-5', '0'],
        ['6-11', '1'],
        ['6-11', '1'],
      ],
    );
  });

  it('reads SOC, the pre-2017 name of SYS (derived: the same capture with SYS written SOC)', () => {
    const old = parseTopology(fixture('topo-gtx-titan-x-4-mlx4.txt').replace(/\bSYS\b(?!\s+=)/g, 'SOC'))!;
    const l = link(old, 0, 2)!;
    assert.deepEqual([l.type, l.label, l.rank], ['SYS', 'SOC', linkRank('SYS')]);
  });
});

describe('nvidia-smi topo -m: 8 GPUs (RTX A5000) over PCIe switches, no legend printed', () => {
  const t = topo('topo-rtxa5000-8-mlx5.txt');

  it('reads PIX, PXB and SYS pairs', () => {
    assert.equal(link(t, 2, 3)!.type, 'PIX');
    assert.equal(link(t, 6, 7)!.type, 'PIX');
    assert.equal(link(t, 0, 1)!.type, 'PXB');
    assert.equal(link(t, 0, 4)!.type, 'SYS');
    assert.equal(link(t, 3, 7)!.type, 'SYS');
    assert.equal(t.links.filter((l) => l.type === 'SYS').length, 16);
  });

  it('falls back to the standard legend and reads mlx5 NICs and affinity', () => {
    assert.equal(link(t, 0, 1)!.meaning, 'Connection traversing multiple PCIe bridges (without traversing the PCIe Host Bridge)');
    assert.deepEqual(
      t.nics.map((n) => n.label),
      ['mlx5_0', 'mlx5_1'],
    );
    assert.deepEqual(
      t.nics[1]!.gpus.map((g) => g.type),
      ['NODE', 'NODE', 'NODE', 'NODE', 'SYS', 'SYS', 'SYS', 'SYS'],
    );
    assert.deepEqual(t.affinity[5], { gpu: 5, cpuAffinity: '16-31', numaAffinity: '1', gpuNumaId: null });
  });
});

describe('nvidia-smi topo -m: single GPU captures (TABs and ANSI underline)', () => {
  it('H100: no links, GPU NUMA ID column read from the end of the row', () => {
    const t = topo('topo-h100-80gb-hbm3-1.txt');
    assert.deepEqual(t.gpus, [0]);
    assert.deepEqual(t.links, []);
    assert.deepEqual(t.matrix.columns, ['GPU0', 'CPU Affinity', 'NUMA Affinity', 'GPU NUMA ID']);
    assert.deepEqual(t.affinity, [{ gpu: 0, cpuAffinity: '0-19', numaAffinity: '0', gpuNumaId: null }]);
    assert.deepEqual(t.matrix.rows[0], { label: 'GPU0', cells: ['X', '0-19', '0', 'N/A'] });
  });

  it('Windows RTX 2080 SUPER: empty affinity cells, same result with CRLF line ends', () => {
    const lf = topo('topo-rtx2080super-windows-1.txt');
    assert.deepEqual(lf.affinity, [{ gpu: 0, cpuAffinity: null, numaAffinity: null, gpuNumaId: null }]);
    assert.deepEqual(parseTopology(crlf(fixture('topo-rtx2080super-windows-1.txt'))), lf);
  });

  it('CRLF does not change an 8-GPU reading either', () => {
    assert.deepEqual(parseTopology(crlf(fixture('topo-a100-sxm4-40gb-8-nic.txt'))), topo('topo-a100-sxm4-40gb-8-nic.txt'));
  });
});

describe('link cells and ranks', () => {
  it('parses every code and orders them for DDP', () => {
    assert.deepEqual(parseLinkCell(' NV18 '), { type: 'NV', nvlinks: 18 });
    assert.deepEqual(parseLinkCell('X'), { type: 'X', nvlinks: 0 });
    assert.deepEqual(parseLinkCell('SOC'), { type: 'SYS', nvlinks: 0 });
    assert.deepEqual(parseLinkCell('???'), { type: 'unknown', nvlinks: 0 });
    const order = [linkRank('NV', 12), linkRank('NV', 2), linkRank('PIX'), linkRank('PXB'), linkRank('PHB'), linkRank('NODE'), linkRank('SYS')];
    assert.deepEqual(
      [...order].sort((a, b) => b - a),
      order,
    );
    assert.ok(new Set(order).size === order.length);
  });

  it('returns null for text without a matrix (an error message)', () => {
    assert.equal(parseTopology(fixture('error-driver-communication.txt')), null);
  });
});
