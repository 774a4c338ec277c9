// The two `node:zlib` functions the export uses, as workerd provides them under the `nodejs_compat` flag every
// generated project sets. The toolchain carries no @types/node (the runtime is not Node), so they are declared here.
// https://developers.cloudflare.com/workers/runtime-apis/nodejs/zlib/
declare module "node:zlib" {
  export function deflateRawSync(data: string | ArrayBuffer | ArrayBufferView, options?: { level?: number }): Uint8Array;
  export function inflateRawSync(data: ArrayBuffer | ArrayBufferView): Uint8Array;
}
