/**
 * nf_tables wire constants from <linux/netfilter/nf_tables.h>, <linux/netfilter/nfnetlink.h> and
 * <linux/netfilter.h>, kept in one place so that encoders and decoders agree. Only what cnikit
 * encodes or decodes is here. nf_tables sends most u32 attributes in network byte order
 * (registers, flags, hook numbers, priorities, lengths), which the encoders handle with `u32be`.
 */

export const NFNL_SUBSYS_NFTABLES = 10;
export const NFNL_MSG_BATCH_BEGIN = 16;
export const NFNL_MSG_BATCH_END = 17;
export const NFNL_BATCH_GENID = 1;

/** NFT_MSG_* without the subsystem; `msgType()` adds it. */
export const NFT_MSG = {
  NEWTABLE: 0, GETTABLE: 1, DELTABLE: 2,
  NEWCHAIN: 3, GETCHAIN: 4, DELCHAIN: 5,
  NEWRULE: 6, GETRULE: 7, DELRULE: 8,
  NEWSET: 9, GETSET: 10, DELSET: 11,
  NEWSETELEM: 12, GETSETELEM: 13, DELSETELEM: 14,
  NEWGEN: 15, GETGEN: 16,
} as const;

/** The netlink message type of an nf_tables message. */
export function msgType(msg: number): number {
  return (NFNL_SUBSYS_NFTABLES << 8) | msg;
}

export const NFPROTO = { inet: 1, ip: 2, arp: 3, netdev: 5, bridge: 7, ip6: 10 } as const;
export type FamilyName = keyof typeof NFPROTO;
export const NFPROTO_IPV4 = 2;
export const NFPROTO_IPV6 = 10;

export const HOOK = { prerouting: 0, input: 1, forward: 2, output: 3, postrouting: 4 } as const;
export type HookName = keyof typeof HOOK;
/** Standard priorities (nft's names). */
export const PRIORITY = { dstnat: -100, filter: 0, srcnat: 100 } as const;

export const NF_DROP = 0;
export const NF_ACCEPT = 1;
export const NFT_CONTINUE = -1;
export const NFT_BREAK = -2;
export const NFT_JUMP = -3;
export const NFT_GOTO = -4;
export const NFT_RETURN = -5;

/** 16-byte registers; NFT_REG32_00 (8) and up address the same space in 4-byte steps. */
export const NFT_REG_VERDICT = 0;
export const NFT_REG_1 = 1;
export const NFT_REG32_00 = 8;

export const NFTA_TABLE = { NAME: 1, FLAGS: 2, USE: 3, HANDLE: 4, USERDATA: 6 } as const;
export const NFTA_CHAIN = { TABLE: 1, HANDLE: 2, NAME: 3, HOOK: 4, POLICY: 5, USE: 6, TYPE: 7, FLAGS: 10 } as const;
export const NFTA_HOOK = { HOOKNUM: 1, PRIORITY: 2 } as const;
export const NFTA_RULE = { TABLE: 1, CHAIN: 2, HANDLE: 3, EXPRESSIONS: 4, USERDATA: 7 } as const;
export const NFTA_LIST_ELEM = 1;
export const NFTA_EXPR = { NAME: 1, DATA: 2 } as const;
export const NFTA_DATA = { VALUE: 1, VERDICT: 2 } as const;
export const NFTA_VERDICT = { CODE: 1, CHAIN: 2 } as const;
export const NFTA_SET = {
  TABLE: 1, NAME: 2, FLAGS: 3, KEY_TYPE: 4, KEY_LEN: 5, DATA_TYPE: 6, DATA_LEN: 7, POLICY: 8,
  DESC: 9, ID: 10, USERDATA: 13, HANDLE: 16,
} as const;
export const NFTA_SET_DESC = { SIZE: 1, CONCAT: 2 } as const;
export const NFTA_SET_FIELD_LEN = 1;
export const NFT_SET = { ANONYMOUS: 0x1, CONSTANT: 0x2, INTERVAL: 0x4, MAP: 0x8, TIMEOUT: 0x10, EVAL: 0x20, CONCAT: 0x80 } as const;
export const NFTA_SET_ELEM_LIST = { TABLE: 1, SET: 2, ELEMENTS: 3, SET_ID: 4 } as const;
export const NFTA_SET_ELEM = { KEY: 1, DATA: 2, FLAGS: 3, USERDATA: 6, KEY_END: 10 } as const;
export const NFT_SET_ELEM_INTERVAL_END = 0x1;
export const NFTA_GEN_ID = 1;
/** NFTA_SET_DATA_TYPE of a verdict map (<linux/netfilter/nf_tables.h> NFT_DATA_VERDICT). */
export const NFT_DATA_VERDICT = 0xffffff00;

/** libnftnl's userdata TLV types: the comment `nft list` shows for rules and set elements. */
export const NFTNL_UDATA_RULE_COMMENT = 0;
export const NFTNL_UDATA_SET_ELEM_COMMENT = 0;

/**
 * nft datatype ids (nftables src/datatype.h), combined for a concatenation as
 * `(type << 6) | next` (TYPE_BITS = 6). The kernel stores them only so that `nft list` can
 * print keys; it does not interpret them.
 */
export const DATATYPE = { verdict: 1, ipv4_addr: 7, ipv6_addr: 8, inet_proto: 12, inet_service: 13, ifname: 41 } as const;
export type DataTypeName = keyof typeof DATATYPE;
/** Bytes each datatype takes in a key (before padding to 4 in a concatenation). */
export const DATATYPE_LEN: Record<DataTypeName, number> = {
  verdict: 4, ipv4_addr: 4, ipv6_addr: 16, inet_proto: 1, inet_service: 2, ifname: 16,
};
