// maskPII / maskDeep: built-in classes, Luhn-checked cards, phone formats, custom patterns, JSON values.
import { describe, expect, it } from "vitest";
import { PolicyError } from "../errors";
import { luhnValid, maskDeep, maskPII, type PiiRules } from "../pii";

const all: PiiRules = { classes: ["email", "phone", "card", "employee_id"], patterns: { employee_id: "EMP-[0-9]{6}" } };

describe("maskPII", () => {
  it("masks emails", () => {
    expect(maskPII("write to jane.doe+refunds@mail.example.co.uk today", all)).toBe("write to [email] today");
    expect(maskPII("a@b.io,c_d@e-f.com", all)).toBe("[email],[email]");
  });

  it("masks Luhn-valid cards with spaces, dashes or none", () => {
    expect(maskPII("card 4111 1111 1111 1111 exp 12/29", all)).toBe("card [card] exp 12/29");
    expect(maskPII("card 5500-0000-0000-0004.", all)).toBe("card [card].");
    expect(maskPII("amex 378282246310005", all)).toBe("amex [card]");
    expect(maskPII("amex 3782 822463 10005", all)).toBe("amex [card]");
  });

  it("leaves Luhn-invalid digit runs (order numbers) alone", () => {
    expect(luhnValid("4111111111111112")).toBe(false);
    expect(maskPII("order 4111111111111112 shipped", all)).toBe("order 4111111111111112 shipped");
    expect(maskPII("order 1234-5678-9012-3456", all)).toBe("order 1234-5678-9012-3456");
  });

  it("finds a card inside a longer run of digit groups", () => {
    expect(maskPII("qty 12 4111 1111 1111 1111 2 items", all)).toBe("qty 12 [card] 2 items");
    expect(maskPII("4111111111111111 5500000000000004", all)).toBe("[card] [card]");
  });

  it("masks international and US phone numbers", () => {
    expect(maskPII("call +1 (415) 555-2671 now", all)).toBe("call [phone] now");
    expect(maskPII("call +44 20 7946 0958", all)).toBe("call [phone]");
    expect(maskPII("call +14155552671.", all)).toBe("call [phone].");
    expect(maskPII("call (415) 555-2671 or 415.555.2671 or 415-555-2671", all)).toBe("call [phone] or [phone] or [phone]");
    expect(maskPII("desk 555-1234", all)).toBe("desk [phone]");
    expect(maskPII("tel 030 1234 5678", all)).toBe("tel [phone]");
  });

  it("leaves dates, IPs, short numbers and bare digit runs alone", () => {
    const text = "on 2026-11-26 from 10.20.30.40 ref 555-12 order 4155552671 at 12/29/2026";
    expect(maskPII(text, all)).toBe(text);
  });

  it("masks custom patterns by name", () => {
    expect(maskPII("by EMP-123456 and EMP-654321", all)).toBe("by [employee_id] and [employee_id]");
    expect(maskPII("EMP-12345 is too short", all)).toBe("EMP-12345 is too short");
  });

  it("only masks the classes asked for", () => {
    const onlyEmail: PiiRules = { classes: ["email"], patterns: {} };
    expect(maskPII("x@y.com +1 415 555 2671 4111111111111111", onlyEmail)).toBe("[email] +1 415 555 2671 4111111111111111");
    expect(maskPII("x@y.com", { classes: [], patterns: {} })).toBe("x@y.com");
  });

  it("is repeatable (regex state does not leak between calls)", () => {
    for (let i = 0; i < 3; i++) expect(maskPII("EMP-000001", all)).toBe("[employee_id]");
  });

  it("rejects unknown classes and bad patterns loudly", () => {
    expect(() => maskPII("x", { classes: ["ssn"], patterns: {} })).toThrow(PolicyError);
    expect(() => maskPII("x", { classes: ["bad"], patterns: { bad: "([" } })).toThrow(/bad/);
    expect(() => maskPII("x", { classes: ["empty"], patterns: { empty: "a*" } })).toThrow(/empty string/);
  });

  it("masks a declared pattern only when the mask list names it", () => {
    const declaredOnly: PiiRules = { classes: ["email"], patterns: { employee_id: "EMP-[0-9]{6}" } };
    expect(maskPII("EMP-123456 x@y.com", declaredOnly)).toBe("EMP-123456 [email]");
  });

  it("masks IP addresses, v4 and v6, and nothing that only looks like one", () => {
    const ip: PiiRules = { classes: ["ip"], patterns: {} };
    expect(maskPII("from 10.20.30.40 and 2001:0db8:85a3:0000:0000:8a2e:0370:7334 or fe80::1ff:fe23:4567:890a", ip))
      .toBe("from [ip] and [ip] or [ip]");
    expect(maskPII("version 1.2.3.4.5, 999.1.1.1, at 12:30:45, on 2026-11-26", ip))
      .toBe("version 1.2.3.4.5, 999.1.1.1, at 12:30:45, on 2026-11-26");
  });

  it("masks IBANs that pass the mod-97 check, spaced or not", () => {
    const iban: PiiRules = { classes: ["iban"], patterns: {} };
    expect(maskPII("pay GB82 WEST 1234 5698 7654 32 or DE89370400440532013000", iban)).toBe("pay [iban] or [iban]");
    expect(maskPII("not GB82 WEST 1234 5698 7654 33", iban)).toBe("not GB82 WEST 1234 5698 7654 33");
  });
});

describe("maskDeep", () => {
  it("masks strings inside objects and arrays, keeps keys and other values", () => {
    const input = {
      "jane@example.com": "key stays",
      note: "mail jane@example.com",
      items: ["4111 1111 1111 1111", 42, null, true, { phone: "+1 415 555 2671" }],
    };
    const out = maskDeep(input, all);
    expect(out).toEqual({
      "jane@example.com": "key stays",
      note: "mail [email]",
      items: ["[card]", 42, null, true, { phone: "[phone]" }],
    });
    expect(input.note).toBe("mail jane@example.com"); // not mutated
    expect(maskDeep("EMP-999999", all)).toBe("[employee_id]");
  });
});

describe("maskPII on text as people type it", () => {
  const builtins: PiiRules = { classes: ["email", "phone", "card", "ip", "iban"], patterns: {} };

  it("sees full-width digits and signs (NFKC)", () => {
    expect(maskPII("card ４１１１ １１１１ １１１１ １１１１ ok", builtins)).toBe("card [card] ok");
    expect(maskPII("mail jane＠example.com", builtins)).toBe("mail [email]");
    expect(maskPII("call ＋１ ４１５ ５５５ ２６７１", builtins)).toBe("call [phone]");
  });

  it("masks internationalized emails", () => {
    expect(maskPII("to josé@bücher.de and 用户@例え.jp", builtins)).toBe("to [email] and [email]");
    expect(maskPII("to δοκιμή@παράδειγμα.δοκιμή.", builtins)).toBe("to [email].");
    expect(maskPII("to x@xn--bcher-kva.xn--p1ai", builtins)).toBe("to [email]");
  });

  it("masks cards and phones with dots, Unicode spaces, dashes and repeated separators", () => {
    expect(maskPII("4111.1111.1111.1111", builtins)).toBe("[card]");
    expect(maskPII("4111\u00a01111\u202f1111\u20091111", builtins)).toBe("[card]");
    expect(maskPII("4111 – 1111 — 1111 - 1111", builtins)).toBe("[card]");
    expect(maskPII("4111\u200b1111\u200b1111\u200b1111", builtins)).toBe("[card]");
    expect(maskPII("call 415\u2014555\u20132671 or 415  555  2671", builtins)).toBe("call [phone] or [phone]");
  });

  it("still leaves dates, versions and Luhn-invalid runs alone", () => {
    const text = "on 2026\u201311\u201326 v1.2.3 order 4111.1111.1111.1112";
    expect(maskPII(text, builtins)).toBe("on 2026-11-26 v1.2.3 order 4111.1111.1111.1112");
  });
});
