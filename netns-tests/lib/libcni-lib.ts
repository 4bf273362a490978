/**
 * Driving conflists through libcni itself, the Go library containerd, CRI-O and Podman's CNI
 * backend run plugins with: the fixture fixtures/libcni-driver, built from Debian's
 * golang-github-appc-cni-dev into a temp dir. libcni is what injects runtimeConfig from the
 * capability arguments (marshalled as the runtime's Go values: containerd's `HostPort`), passes
 * CNI_ARGS through, threads prevResult, keeps the results cache and hands DEL the cached result.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, ROOT, type Sandbox } from './sandbox.ts';
import type { Need } from './netns-test.ts';

const LIBCNI_SRC = '/usr/share/gocode/src/github.com/containernetworking/cni/libcni';

/** Go and the libcni sources, which the driver is built from. */
export const LIBCNI_NEED: Need = {
  met: spawnSync('go', ['version']).status === 0 && existsSync(LIBCNI_SRC),
  reason: 'needs go and golang-github-appc-cni-dev (apt-get install golang-go golang-github-appc-cni-dev)',
};

/** Builds the driver into a fresh temp dir; returns its path and the dir's removal. */
export function buildLibcniDriver(): { driver: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'cnikit-libcni-'));
  const driver = join(dir, 'libcni-driver');
  const r = spawnSync('go', ['build', '-o', driver, join(ROOT, 'netns-tests/fixtures/libcni-driver/main.go')], {
    env: { ...process.env, GOPATH: '/usr/share/gocode', GO111MODULE: 'off', GOCACHE: join(dir, 'cache'), GOFLAGS: '' },
    encoding: 'utf8',
  });
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`go build failed: ${r.stderr}`);
  }
  return { driver, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** What a runtime passes for one attachment, besides the network and the namespace. */
export interface RuntimeCall {
  /** NETCONFPATH: the directory holding the conflists. */
  confDir: string;
  ifName?: string;
  /** CNI_ARGS as the runtime sets them (`K=V;K2=V2`). */
  cniArgs?: string;
  /** The capability arguments (libcni's RuntimeConf.CapabilityArgs), as JSON values. */
  capabilityArgs?: Record<string, unknown>;
  /** CNI_PATH; default dist/bin only. */
  path?: string;
}

/** Runs `libcni-driver add|check|del NETWORK NETNS` in the sandbox host; the cache is under sb.tmp/cache. */
export function libcni(sb: Sandbox, driver: string, cmd: 'add' | 'check' | 'del', network: string, netns: string, c: RuntimeCall) {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH, NETCONFPATH: c.confDir, CNI_PATH: c.path ?? BIN, CNI_CACHE_DIR: join(sb.tmp, 'cache'),
    CNI_IFNAME: c.ifName ?? 'eth0', CNI_ARGS: c.cniArgs ?? '',
  };
  if (c.capabilityArgs) env.CAP_ARGS = JSON.stringify(c.capabilityArgs);
  return sb.exec(sb.host, driver, [cmd, network, netns], { env });
}
