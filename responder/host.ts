/**
 * The seam through which a long-lived process offers to host DNS responders for the plugin calls
 * it runs: `CmdArgs.responders` (pkg/cni/skel.ts), set by the warm engine (engine/server.ts, an
 * InProcessResponders of responder/in-process.ts) and absent in a fresh plugin process, where
 * the dnsname plugin starts and reloads a detached responder process as always (ensure.ts).
 *
 * The contract is ensureResponder's: make sure a responder serves the run directory and has read
 * the records, and answer the reload command as the control socket would. The engine's host
 * takes a directory over from a responder process that serves it (control `yield`,
 * responder/in-process.ts) and uses one that does not yield as it is. This file holds types
 * only, so that skel and the plugin import nothing of the responder through it.
 */
import type { ControlCommand, ControlReply } from './control.ts';
import type { HostProbe } from './liveness.ts';

/** What the plugin says about the responder it needs (ensure.ts EnsureOptions, the same fields). */
export interface ResponderNeed {
  recordsDir: string;
  runDir: string;
  /** argv that starts a responder process (`--responder ...` appended): for a host that hands over to one. */
  command: string[];
  /** The call's environment (a responder process gets it minus CNI_*; CNIKIT_DEBUG sets the log level). */
  env: NodeJS.ProcessEnv;
  /** The command that asks for the reload (default `reload`). */
  reload?: ControlCommand;
  /**
   * The call's probe of the host, for a reload in this process: what it has read already (the
   * addresses, the bridge's name) is not asked of the kernel again in the same call.
   */
  probe?: HostProbe;
}

/** A process that can run responders for its plugin calls (the warm engine). */
export interface ResponderHost {
  /**
   * Makes sure a responder serves `need.runDir` and has read its current files: the one this
   * host runs (an in-memory reload), else one that answers the control socket, else a new one in
   * this process. Must be called with the records lock held. Returns the reply to `need.reload`.
   */
  ensure(need: ResponderNeed): Promise<ControlReply>;
  /** Tells the responder of `runDir`, in this process or over its control socket, to reload; starts none. */
  reload(runDir: string): Promise<void>;
}
