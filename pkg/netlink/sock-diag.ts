/**
 * sock_diag (NETLINK_SOCK_DIAG, linux/inet_diag.h): the TCP, UDP and SCTP sockets of one network
 * namespace, with their local address and port, as `ss -tuln` lists them. The cnikit command
 * uses it to refuse a published port that something on the host already listens on. Read-only:
 * one dump per family and protocol.
 */
import { type IP, ipFromBytes } from '../ip/cidr.ts';
import { BlockingNetlinkSocket } from './socket.ts';

export const NETLINK_SOCK_DIAG = 4;
const SOCK_DIAG_BY_FAMILY = 20;
const AF_INET = 2, AF_INET6 = 10;
const IPPROTO = { tcp: 6, udp: 17, sctp: 132 } as const;
/** TCP_LISTEN (SCTP's listening state has the same number). */
export const STATE_LISTEN = 10;
const ALL_STATES = 0xffffffff;

export type InetProtocol = keyof typeof IPPROTO;

export interface InetSocket {
  protocol: InetProtocol;
  /** TCP state number (10 = LISTEN; a bound, unconnected UDP socket is 7, CLOSE). */
  state: number;
  local: IP;
  port: number;
}

/** struct inet_diag_req_v2: family, protocol, ext, pad, states, then a zeroed inet_diag_sockid (48 bytes). */
function request(family: number, protocol: number, states: number): Buffer {
  const b = Buffer.alloc(56);
  b.writeUInt8(family, 0);
  b.writeUInt8(protocol, 1);
  b.writeUInt32LE(states >>> 0, 4);
  return b;
}

/**
 * Lists the sockets of `protocol` in the namespace at `netnsPath` (omitted: the caller's): for
 * TCP and SCTP the listening ones, for UDP every bound one (a UDP socket has no listen state).
 * Equivalent to: `ss -H -n -l -t` (`-u -a` for UDP, `-S` for SCTP)
 */
export async function inetSockets(protocol: InetProtocol, netnsPath?: string | null): Promise<InetSocket[]> {
  const sock = BlockingNetlinkSocket.open(NETLINK_SOCK_DIAG, netnsPath);
  try {
    const out: InetSocket[] = [];
    const states = protocol === 'udp' ? ALL_STATES : 1 << STATE_LISTEN;
    for (const family of [AF_INET, AF_INET6]) {
      for (const m of await sock.dump(SOCK_DIAG_BY_FAMILY, request(family, IPPROTO[protocol], states), `SOCK_DIAG_BY_FAMILY ${protocol}`)) {
        const p = m.payload;
        if (p.length < 24) continue;
        // struct inet_diag_msg: family, state, timer, retrans, then the sockid: sport (be16), dport, src[16]...
        const local = ipFromBytes(p.subarray(8, p[0] === AF_INET ? 12 : 24));
        out.push({ protocol, state: p[1]!, local, port: p.readUInt16BE(4) });
      }
    }
    return out;
  } finally {
    sock.close();
  }
}
