// seal.ts: AES-GCM sealing of a task's values under the task's key, and what a lost key or altered blob does.
import { describe, expect, it } from "vitest";
import { isSealed, newSealKey, SEALED, sealText, sealWith, unsealText } from "../seal";

describe("sealing", () => {
  it("opens what it sealed, with a fresh IV each time", async () => {
    const key = newSealKey();
    const a = await sealText(key, "jane@example.org");
    const b = await sealText(key, "jane@example.org");
    expect(a).not.toBe(b);
    expect(a).not.toContain("jane");
    expect(await unsealText(key, a)).toBe("jane@example.org");
  });

  it("cannot open under another key, nor an altered blob", async () => {
    const key = newSealKey();
    const blob = await sealText(key, "4111 1111 1111 1111");
    await expect(unsealText(newSealKey(), blob)).rejects.toThrow();
    // Flip a character well inside the base64: the last one before `=` padding carries unused low bits, so
    // changing it (A <-> B) can decode to the same bytes and the test would pass a tampered blob 1 time in 16.
    const at = blob.length - 10;
    const flipped = blob.slice(0, at) + (blob[at] === "A" ? "B" : "A") + blob.slice(at + 1);
    await expect(unsealText(key, flipped)).rejects.toThrow();
    await expect(unsealText(key, "plain")).rejects.toThrow("not a sealed value");
  });

  it("wraps a JSON value as the engine stores it", async () => {
    const key = newSealKey();
    const keeper = { seal: (p: string) => sealText(key, p), unseal: (b: string) => unsealText(key, b), forgetSealKey: () => {} };
    const sealed = await sealWith(keeper, { email: "jane@example.org", n: 3 });
    expect(isSealed(sealed)).toBe(true);
    expect(isSealed({ email: "x" })).toBe(false);
    expect(JSON.parse(await unsealText(key, sealed[SEALED]))).toEqual({ email: "jane@example.org", n: 3 });
  });
});
