/**
 * The types of the capability arguments cnikit passes and reads (a runtime's `runtimeConfig`
 * keys, CNI's CONVENTIONS.md): one declaration per concept, shared by the runtime side that
 * writes them (the cnikit command, the results cache listing) and the plugin that consumes them
 * (portmap). Types only; each side validates what it receives.
 */

/** The transport protocols a port mapping can name. */
export type PortProtocol = 'tcp' | 'udp' | 'sctp';

/**
 * One entry of the `portMappings` capability: `{"hostPort":8080,"containerPort":80,
 * "protocol":"tcp","hostIP":"192.0.2.1"}`. `Addr` is how the host address is held: the wire's
 * string by default, a parsed address once a plugin has checked it.
 */
export interface PortMapping<Addr = string> {
  hostPort: number;
  containerPort: number;
  protocol: PortProtocol;
  hostIP?: Addr;
}
