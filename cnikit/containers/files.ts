/**
 * The two files `cnikit run` bind-mounts over the command's /etc (as Docker writes
 * /var/lib/docker/containers/ID/resolv.conf and hosts): resolv.conf from the DNS of every
 * attached network in order (nameservers and search domains merged), unless --dns/--dns-search/
 * --dns-option override them, falling back to the host's servers (loopback ones dropped: they do
 * not exist in the container's namespace); hosts with localhost, the container's names on each of
 * its addresses and the --add-host entries.
 *
 * The files are rewritten in place (same inode) when `connect`/`disconnect` change the networks:
 * a bind mount shows the file it was made from, so replacing it by rename would not be seen.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { ContainerState } from './state.ts';

const dedup = (xs: string[]) => [...new Set(xs)];

/** Reads nameserver/search/options lines of a resolv.conf text. */
export function parseResolvConf(text: string): { nameservers: string[]; search: string[]; options: string[] } {
  const out = { nameservers: [] as string[], search: [] as string[], options: [] as string[] };
  for (const line of text.split('\n')) {
    const [key, ...vals] = line.trim().split(/\s+/);
    if (key === 'nameserver' && vals[0]) out.nameservers.push(vals[0]);
    else if (key === 'search' || key === 'domain') out.search.push(...vals);
    else if (key === 'options') out.options.push(...vals);
  }
  return out;
}

const isLoopback = (ns: string) => ns.startsWith('127.') || ns === '::1';

/** The command's resolv.conf for the container as it is now; `hostText` is the host's resolv.conf. */
export function resolvConfText(s: ContainerState, hostText: string): string {
  const fromNets = s.attachments.flatMap((a) => (a.dns ? [a.dns] : []));
  let nameservers = dedup(fromNets.flatMap((d) => d.nameservers));
  let search = dedup(fromNets.flatMap((d) => d.search));
  let options = dedup(fromNets.flatMap((d) => d.options));
  let source = s.attachments.filter((a) => a.dns?.nameservers.length).map((a) => a.network);
  if (!nameservers.length) {
    const host = parseResolvConf(hostText);
    nameservers = host.nameservers.filter((n) => !isLoopback(n));
    if (!search.length) search = host.search;
    if (!options.length) options = host.options;
    source = ['the host'];
  }
  if (s.dns?.nameservers) { nameservers = s.dns.nameservers; source = ['--dns']; }
  if (s.dns?.search) search = s.dns.search;
  if (s.dns?.options) options = s.dns.options;
  const lines = [`# written by cnikit run for ${s.id} (DNS of ${source.join(', ') || 'nothing'})`, ...nameservers.map((n) => `nameserver ${n}`)];
  if (search.length) lines.push(`search ${search.join(' ')}`);
  if (options.length) lines.push(`options ${options.join(' ')}`);
  return lines.join('\n') + '\n';
}

/** The command's /etc/hosts: localhost, the container's names on its addresses, --add-host. */
export function hostsText(s: ContainerState): string {
  const names = s.name ? [s.name, ...s.aliases] : s.aliases;
  const lines = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback'];
  if (names.length) for (const a of s.attachments) for (const addr of a.addresses) lines.push(`${addr.split('/')[0]}\t${names.join(' ')}`);
  for (const [host, ip] of s.addHosts) lines.push(`${ip}\t${host}`);
  return lines.join('\n') + '\n';
}

/** Writes the container's files (those it has) in place; returns the [file, target] bind pairs. */
export function writeContainerFiles(s: ContainerState): [string, string][] {
  const binds: [string, string][] = [];
  if (s.files.resolvConf) {
    let host = '';
    try { host = readFileSync('/etc/resolv.conf', 'utf8'); } catch { /* no host resolver configured */ }
    writeFileSync(s.files.resolvConf, resolvConfText(s, host), { mode: 0o644 });
    binds.push([s.files.resolvConf, '/etc/resolv.conf']);
  }
  if (s.files.hosts) {
    writeFileSync(s.files.hosts, hostsText(s), { mode: 0o644 });
    binds.push([s.files.hosts, '/etc/hosts']);
  }
  return binds;
}
