// The one Durable Object class (binding `SESSION`, class `SessionDO` in the generated index.ts). Its name says
// which role an instance plays (names.ts), and each RPC method belongs to one role:
//   session turns   session.ts      turnResponse, turn, state, traces
//   task registry   registry.ts     registerTask, claimTaskKey, ownsTask, recordStep, exportTask, taskSteps
//   task chain      task_chain.ts   recordDecision, seal, unseal, forgetSealKey, traces
//   SLO monitor     slo.ts          observe
//   head log        heads.ts        anchorHead, signedHeads
//   index           retrieval.ts    indexArtifact, indexMany, searchIndex, indexStats
// This class owns what the roles share — SQLite, the meta table, the decision chain and the export outbox —
// and makes each role's object on its first call, handing it a narrow host (the role's `*Host` interface).
// To add an RPC: add the method to its role's class, and a one-line delegate here.
// https://developers.cloudflare.com/durable-objects/api/sqlite-storage-api/

import { DurableObject } from "cloudflare:workers";
import type { ChainRecord } from "./chain";
import { DecisionLog, RECORDS_SCHEMA, type DecisionView, type Scope } from "./decisions";
import type { RuntimeEnv } from "./env";
import { ExportSender, Outbox } from "./export";
import { Anchorer, HeadLog, signerFor, type ChainHead, type ChainKind, type SignedHead } from "./heads";
import { META_SCHEMA, MetaTable } from "./meta";
import { headLogName, indexObjectName, sloMonitorName } from "./names";
import type { Policy } from "./policy";
import type { HistoryMessage } from "./prompt";
import { REGISTRY_SCHEMA, TaskRegistry } from "./registry";
import { RetrievalIndex, type IndexDoc, type SearchHit, type SearchMode } from "./retrieval";
import { SESSION_SCHEMA, SessionTurns, turnRecords, type TurnOutcome, type TurnRequest } from "./session";
import { SloMonitor, type Alert, type SliSample } from "./slo";
import { TaskChain } from "./task_chain";

/** What the Worker needs of every generated Env. */
export type AgentEnv = RuntimeEnv & {
  SESSION: DurableObjectNamespace<SessionObject<AgentEnv>>;
};

export class SessionObject<E extends AgentEnv> extends DurableObject<E> {
  private readonly sql: SqlStorage;
  private readonly meta: MetaTable;
  private readonly outbox = new Outbox();
  private exportSender: ExportSender | undefined;
  private readonly log: DecisionLog;
  private sessionRole: SessionTurns | undefined;
  private registryRole: TaskRegistry | undefined;
  private chainRole: TaskChain | undefined;
  private monitorRole: SloMonitor | undefined;
  private headLogRole: HeadLog | undefined;
  private indexRole: RetrievalIndex | undefined;
  /** Sends this object's chain head to the tenant's head log after each commit (only with `audit sign`). */
  private anchorer: Anchorer | undefined;

  constructor(
    ctx: DurableObjectState,
    env: E,
    protected readonly policy: Policy,
  ) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    // Every role's tables, in one statement: an object's role is known only from the call it gets.
    this.sql.exec(META_SCHEMA + RECORDS_SCHEMA + SESSION_SCHEMA + REGISTRY_SCHEMA);
    this.meta = new MetaTable(this.sql);
    this.log = new DecisionLog(this.sql, policy.spec_hash, this.outbox);
  }

  private get turns(): SessionTurns {
    this.sessionRole ??= new SessionTurns({ sql: this.sql, env: this.env, policy: this.policy, meta: this.meta,
      log: this.log, outbox: this.outbox,
      sloMonitor: (workflow) => this.env.SESSION.getByName(sloMonitorName(workflow)),
      indexObject: (tenant, index) => this.env.SESSION.getByName(indexObjectName(tenant, index)) });
    return this.sessionRole;
  }

  private get registry(): TaskRegistry {
    this.registryRole ??= new TaskRegistry({ sql: this.sql, meta: this.meta, outbox: this.outbox,
      exportOutbox: () => this.exportOutbox() });
    return this.registryRole;
  }

  private get chain(): TaskChain {
    this.chainRole ??= new TaskChain({ meta: this.meta, log: this.log, exportOutbox: () => this.exportOutbox() });
    return this.chainRole;
  }

  private get monitor(): SloMonitor {
    this.monitorRole ??= new SloMonitor({ sql: this.sql, env: this.env, policy: this.policy });
    return this.monitorRole;
  }

  /** Tell the tenant's head log this object's chain head, after the commit and without waiting for it
   * (heads.ts `Anchorer`: one send in flight, later commits coalesced into the newest head). */
  private anchor(chain: ChainKind): void {
    if (!this.policy.audit) return;
    this.anchorer ??= new Anchorer(() => {
      const last = this.log.written();
      return last && { tenant: last.tenant, chain, id: last.session, seq: last.seq, hash: last.hash };
    }, (head) => this.env.SESSION.getByName(headLogName(head.tenant)).anchorHead(head));
    const work = this.anchorer.poke();
    if (work !== null) this.ctx.waitUntil(work);
  }

  /** Hand what this object committed to the fleet export (export.ts ExportSender): kept in this object's storage
   * and sent by its alarm, so the turn neither waits for the queue nor loses events to it. */
  private exportOutbox(): void {
    const { events, touched } = this.outbox.drain();
    this.sender.keep(events, touched);
  }

  private get sender(): ExportSender {
    this.exportSender ??= new ExportSender(this.sql, this.ctx.storage, this.env.EXPORT_QUEUE,
      () => this.sessionRole?.unfinished ?? null);
    return this.exportSender;
  }

  /** The export's alarm (this object sets no other). */
  override async alarm(info?: AlarmInvocationInfo): Promise<void> {
    await this.sender.flush(info?.retryCount ?? 0);
  }

  // ── RPC: a session's turns (session.ts) ──────────────────────────────────

  /** RPC for the front door: one turn, answered as the HTTP status and JSON body the client gets. Serialized
   * here, once, instead of structured-cloned to the Worker and serialized there. */
  async turnResponse(req: TurnRequest): Promise<{ status: number; body: string }> {
    const outcome = await this.turns.turn(req);
    this.exportOutbox();
    this.anchor("session");
    if (!outcome.ok) {
      return { status: outcome.status, body: JSON.stringify({
        error: { code: outcome.code, message: outcome.message }, decisions: outcome.decisions }) };
    }
    const { ok: _ok, ...answer } = outcome;
    return { status: 200, body: JSON.stringify(answer) };
  }

  async turn(req: TurnRequest): Promise<TurnOutcome> {
    const outcome = await this.turns.turn(req);
    this.anchor("session");
    return outcome;
  }

  state(): { turns: number; summary: string | null; messages: HistoryMessage[] } {
    return this.turns.state();
  }

  /** A session's (or a task's) decision chain after `since`, and its turns' trace records (none for a task). */
  traces(since: number): { records: ChainRecord[]; turns: unknown[] } {
    return { records: this.log.since(since), turns: turnRecords(this.sql) };
  }

  // ── RPC: a workflow's SLO monitor (slo.ts) ───────────────────────────────

  observe(workflow: string, sample: SliSample): Promise<Alert[]> {
    return this.monitor.observe(workflow, sample);
  }

  // ── RPC: a tenant's task registry (registry.ts) ──────────────────────────

  registerTask(id: string, workflow: string): void {
    this.registry.registerTask(id, workflow);
  }

  claimTaskKey(key: string, id: string, workflow: string, body: string):
    { task: string; same: boolean; fresh: boolean } {
    return this.registry.claimTaskKey(key, id, workflow, body);
  }

  ownsTask(id: string): boolean {
    return this.registry.ownsTask(id);
  }

  recordStep(task: string, step: string, body: Record<string, unknown>, tenant = ""): void {
    this.registry.recordStep(task, step, body, tenant);
  }

  exportTask(tenant: string, task: string, step: string | null, body: Record<string, unknown>): void {
    this.registry.exportTask(tenant, task, step, body);
  }

  taskSteps(task: string): unknown[] {
    return this.registry.taskSteps(task);
  }

  // ── RPC: a task's decision chain and sealing key (task_chain.ts) ─────────

  recordDecision(scope: Scope, intent: string, action: string, decision: string, rule: string): DecisionView {
    const view = this.chain.recordDecision(scope, intent, action, decision, rule);
    this.anchor("task");
    return view;
  }

  seal(plain: string): Promise<string> {
    return this.chain.seal(plain);
  }

  unseal(blob: string): Promise<string> {
    return this.chain.unseal(blob);
  }

  forgetSealKey(): void {
    this.chain.forgetSealKey();
  }

  // ── RPC: a tenant's retrieval index (retrieval.ts; this object named indexObjectName(tenant, index)) ──

  private get index(): RetrievalIndex {
    this.indexRole ??= new RetrievalIndex({ sql: this.sql, env: this.env, policy: this.policy });
    return this.indexRole;
  }

  indexArtifact(index: string, tenant: string, doc: IndexDoc): Promise<{ added: boolean; embedded_with: string | null }> {
    return this.index.add(index, tenant, doc);
  }

  indexMany(index: string, docs: IndexDoc[]): number {
    return this.index.addMany(index, docs);
  }

  searchIndex(index: string, tenant: string, query: string, top: number, mode: SearchMode): Promise<SearchHit[]> {
    return this.index.search(index, tenant, query, top, mode);
  }

  indexStats(index: string): { docs: number; bytes: number; database_bytes: number } {
    return this.index.stats(index);
  }

  // ── RPC: a tenant's head log (heads.ts; this object named headLogName(tenant)) ──

  private get headLog(): HeadLog {
    this.headLogRole ??= new HeadLog(this.sql, this.policy.agent.name);
    return this.headLogRole;
  }

  /** Sign and append a chain's head. Throws when the signing secret is unset or no key (the sender logs it). */
  async anchorHead(head: ChainHead): Promise<void> {
    const audit = this.policy.audit;
    if (!audit) return;
    const source = (this.env as unknown as Record<string, unknown>)[audit.signing_secret];
    const signer = await signerFor(audit.signing_secret, typeof source === "string" ? source : undefined);
    await this.headLog.append(head, signer);
  }

  /** Every signed head of one chain, oldest first. */
  signedHeads(chain: ChainKind, id: string): SignedHead[] {
    return this.headLog.entries(chain, id);
  }
}
