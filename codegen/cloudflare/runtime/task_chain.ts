// Role: a task's own object (the object named taskObjectName(tenant, task); object.ts routes its RPCs here).
// The decision chain of the task's steps (decisions.ts), recorded one decision at a time as the steps run,
// and the task's sealing key (seal.ts), which goes when the task ends.

import type { DecisionLog, DecisionView, Scope } from "./decisions";
import type { MetaTable } from "./meta";
import { newSealKey, SealKeyGoneError, sealText, unsealText } from "./seal";

/** What a task's chain needs of its object. */
export interface TaskChainHost {
  readonly meta: MetaTable;
  readonly log: DecisionLog;
  /** Send what is in the outbox to the export, after the commit. */
  exportOutbox(): void;
}

export class TaskChain {
  constructor(private readonly host: TaskChainHost) {}

  /** One policy decision of a task step, chained and stored at once (a task's steps run one at a time). */
  recordDecision(scope: Scope, intent: string, action: string, decision: string, rule: string): DecisionView {
    const view = this.host.log.record(scope, intent, action, { decision, rule });
    this.host.log.flush();
    this.host.exportOutbox();
    return view;
  }

  async seal(plain: string): Promise<string> {
    let key = this.host.meta.get("seal_key");
    if (key === null) {
      key = newSealKey();
      this.host.meta.set({ seal_key: key });
    }
    return sealText(key, plain);
  }

  async unseal(blob: string): Promise<string> {
    const key = this.host.meta.get("seal_key");
    if (key === null) throw new SealKeyGoneError();
    return unsealText(key, blob);
  }

  /** The task ended: its key goes, and with it every copy of its sealed values. Overwritten before the row is
   * deleted, so the freed page does not keep it either. */
  forgetSealKey(): void {
    if (this.host.meta.get("seal_key") === null) return;
    this.host.meta.set({ seal_key: "0".repeat(44) });
    this.host.meta.set({ seal_key: null });
  }
}
