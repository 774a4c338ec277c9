// Role: naming. The Durable Object names that select each role of the one object class (object.ts). Each name
// says which role it addresses, so no tenant, session id or workflow name can ever reach another role's object
// (a session called "tasks", a tenant called "slo").

/** A session's object: its turns, conversation and decision chain (session.ts). */
export const sessionObjectName = (tenant: string, session: string): string =>
  JSON.stringify(["session", tenant, session]);
/** A tenant's task registry: which task ids are its own, and their step records (registry.ts). */
export const taskRegistryName = (tenant: string): string => JSON.stringify(["tasks", tenant]);
/** A task's own object: the decision chain of its steps' tool calls and its sealing key (task_chain.ts). */
export const taskObjectName = (tenant: string, task: string): string => JSON.stringify(["task", tenant, task]);
/** A workflow's SLO monitor, shared by all its sessions and tasks (slo.ts). */
export const sloMonitorName = (workflow: string): string => JSON.stringify(["slo", workflow]);
/** A tenant's retrieval index: its documents, full-text table and local vectors, apart from every other
 * tenant's (retrieval.ts). */
export const indexObjectName = (tenant: string, index: string): string => JSON.stringify(["index", tenant, index]);
/** A tenant's head log: the signed heads of its sessions' and tasks' chains, apart from their objects (heads.ts). */
export const headLogName = (tenant: string): string => JSON.stringify(["heads", tenant]);
