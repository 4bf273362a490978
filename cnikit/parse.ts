/**
 * The cnikit command's argument and environment parsers: cnitool's container id and CNI_ARGS
 * splitting, CAP_ARGS, `-p` port mappings, container names and `--valid` attachments. Pure
 * functions; a bad value throws commander's InvalidArgumentError (a usage error) when it came
 * from an option, or a CniError when it came from the environment, as cnitool reports it.
 */
import { resolve } from 'node:path';
import { InvalidArgumentError } from 'commander';
import type { PortMapping, PortProtocol } from '../pkg/cni/capabilities.ts';
import { CniCode, CniError } from '../pkg/cni/errors.ts';
import type { Attachment } from '../pkg/cni/skel.ts';

/** cnitool's container id: "cnitool-" + the first 20 hex digits of SHA-512(absolute netns path). */
export function cnitoolContainerId(netnsPath: string): string {
  return `cnitool-${process.getBuiltinModule('node:crypto').createHash('sha512').update(resolve(netnsPath)).digest('hex').slice(0, 20)}`;
}

/** Splits a CNI_ARGS string as cnitool does: every `;` piece must be a non-empty `k=v`. */
export function parseArgsEnv(raw: string | undefined): [string, string][] {
  if (!raw) return [];
  return raw.split(';').map((pair) => {
    const i = pair.indexOf('=');
    if (i <= 0) throw new CniError(CniCode.InvalidEnv, `invalid CNI_ARGS pair "${pair}"`, 'CNI_ARGS is KEY=VALUE pairs separated by ";", e.g. IgnoreUnknown=1;K8S_POD_NAME=web');
    return [pair.slice(0, i), pair.slice(i + 1)] as [string, string];
  });
}

/** Parses CAP_ARGS: a JSON object of capability arguments. */
export function parseCapArgs(value: string | undefined): Record<string, unknown> {
  if (!value) return {};
  let v: unknown;
  try {
    v = JSON.parse(value);
  } catch (err) {
    throw new CniError(CniCode.DecodingFailure, 'CAP_ARGS is not valid JSON', `${(err as Error).message}; expected e.g. '{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}'`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new CniError(CniCode.DecodingFailure, 'CAP_ARGS must be a JSON object', 'e.g. {"portMappings":[...]}');
  return v as Record<string, unknown>;
}

/** Parses `-p [HOSTIP:]HOST:CONTAINER[/PROTO]` (commander option parser; repeatable). */
export function parsePublish(value: string, previous: PortMapping[] = []): PortMapping[] {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[0-9.]+):)?(\d+):(\d+)(?:\/(tcp|udp|sctp))?$/.exec(value);
  if (!m) throw new InvalidArgumentError(`"${value}" is not HOST:CONTAINER[/tcp|udp|sctp], e.g. 8080:80 or 127.0.0.1:8080:80/tcp`);
  const hostPort = Number(m[2]);
  const containerPort = Number(m[3]);
  for (const p of [hostPort, containerPort]) if (p < 1 || p > 65535) throw new InvalidArgumentError(`port ${p} in "${value}" is not between 1 and 65535`);
  const pm: PortMapping = { hostPort, containerPort, protocol: (m[4] ?? 'tcp') as PortProtocol };
  if (m[1]) pm.hostIP = m[1].replace(/^\[|\]$/g, '');
  return [...previous, pm];
}

const NAME_RE = /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;

/** Checks a container name or alias: a DNS label, so it can go in CNI_ARGS and be resolved. */
export function parseName(value: string): string {
  if (!NAME_RE.test(value)) throw new InvalidArgumentError(`"${value}" is not a valid name: use letters, digits and "-" (a DNS label, at most 63 characters)`);
  return value;
}

/** Collects a repeatable `--alias`, each checked as a name. */
export function collectName(value: string, previous: string[] = []): string[] {
  return [...previous, parseName(value)];
}

/** Collects a repeatable option's values. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Parses a repeatable `--valid CONTAINERID:IFNAME`. */
export function parseValid(value: string, previous: Attachment[] = []): Attachment[] {
  const i = value.lastIndexOf(':');
  if (i <= 0 || i === value.length - 1) throw new InvalidArgumentError(`"${value}" is not CONTAINERID:IFNAME, e.g. cnitool-0a1b2c3d4e5f60718293:eth0`);
  return [...previous, { containerID: value.slice(0, i), ifname: value.slice(i + 1) }];
}

/** Parses a positive whole number of milliseconds. */
export function parseMillis(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`"${value}" is not a positive number of milliseconds`);
  return n;
}
