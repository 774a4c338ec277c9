// PII masking before anything is persisted: text (or a JSON value) and a workflow's `pii` rules in,
// the same text with each email, phone number, payment card, IP address, IBAN and custom-pattern match
// replaced by `[email]`, `[phone]`, `[card]`, `[ip]`, `[iban]` or `[<pattern name>]` out.

import { PolicyError } from "./errors";

export interface PiiRules {
  /** The classes to mask (`pii mask [...]`): built-in ones, or names of the workflow's own patterns. */
  classes: readonly string[];
  /** Custom detectors (`pii pattern NAME "regex"`): name -> regular expression source (the subset JavaScript
   * and Python agree on). A pattern masks only when `classes` names it. */
  patterns: Readonly<Record<string, string>>;
}

/** The built-in classes; the checker's list (agentspec/platform.py, BUILTIN_PII) is the same. */
export const BUILTIN_CLASSES = ["email", "phone", "card", "ip", "iban"] as const;

// Internationalized too: letters, marks and digits of any script in the local part and the domain labels
// (RFC 6531/IDNA), a top-level domain of letters or its punycode (`xn--`) form.
const EMAIL = new RegExp(
  String.raw`[\p{L}\p{M}\p{N}._%+-]+@[\p{L}\p{M}\p{N}](?:[\p{L}\p{M}\p{N}-]*[\p{L}\p{M}\p{N}])?` +
    String.raw`(?:\.[\p{L}\p{M}\p{N}](?:[\p{L}\p{M}\p{N}-]*[\p{L}\p{M}\p{N}])?)*\.(?:xn--[A-Za-z0-9-]+|\p{L}{2,})(?![\p{L}\p{M}\p{N}])`,
  "gu",
);

// What people type between digit groups besides ASCII: NFKC has already made full-width digits, `＠` and most
// Unicode spaces ASCII; the remaining spaces and dashes are folded here, invisible characters dropped, and a run
// of separators between two digits becomes one (`-` if it has a dash), so "4111 – 1111" reads as "4111-1111".
const SPACES = /[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]/g;
const DASHES = /[\u2010-\u2015\u2212\ufe58\ufe63\uff0d]/g;
const INVISIBLE = /[\u00ad\u200b-\u200d\u2060\ufeff]/g;
const REPEATED = /(?<=\d)[ -]{2,}(?=\d)/g;

/** The text the patterns see, and so the text stored: NFKC-normalized, separators folded (see above). */
export function normalizeForMatching(text: string): string {
  return text.normalize("NFKC").replace(INVISIBLE, "").replace(SPACES, " ").replace(DASHES, "-")
    .replace(REPEATED, (m) => (m.includes("-") ? "-" : " "));
}

// A run of 13+ digits, optionally separated by single spaces, dashes or dots; which part of it is a card is
// decided afterwards (Luhn), so "order 12 4111 1111 1111 1111" still finds the card.
const CARD_RUN = /(?<!\d)\d(?:[ .-]?\d){12,}(?!\d)/g;

// International (+CC ...) or national numbers with at least one separator or parentheses;
// 7 to 15 digits (E.164's maximum) is checked afterwards. Never part of a longer digit run.
const PHONE = new RegExp(
  String.raw`(?<![\w+])(?:` +
    String.raw`\+\d{1,4}(?:[ .-]?\(\d{1,4}\)|[ .-]?\d{1,4}){1,6}` +
    String.raw`|(?:\(\d{2,5}\)[ .-]?|\d{2,5}[ .-])\d{2,4}(?:[ .-]\d{2,4}){0,3}` +
    String.raw`)(?![\w]|[ .-]\d)`,
  "g",
);

// IPv4 with each octet 0-255, or IPv6 in full (eight groups) or compressed (with `::`) form.
const IPV4 = /(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d.])/g;
const IPV6 = new RegExp(
  String.raw`(?<![\w:])(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}` +
    String.raw`|(?:[0-9A-Fa-f]{1,4}:){1,6}:(?:[0-9A-Fa-f]{1,4}:){0,5}[0-9A-Fa-f]{1,4}` +
    String.raw`|::(?:[0-9A-Fa-f]{1,4}:){0,6}[0-9A-Fa-f]{1,4})(?![\w:])`,
  "g",
);

// Country code, check digits, then 11-30 letters and digits, in groups of four or not; mod-97 checked after.
const IBAN = /(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])/g;

/** The ISO 13616 check: move the first four characters to the end, letters to numbers, mod 97 must be 1. */
export function ibanValid(candidate: string): boolean {
  const compact = candidate.replace(/ /g, "");
  if (compact.length < 15 || compact.length > 34) return false;
  let rest = 0;
  for (const ch of compact.slice(4) + compact.slice(0, 4)) {
    const value = ch >= "A" && ch <= "Z" ? String(ch.charCodeAt(0) - 55) : ch;
    for (const digit of value) rest = (rest * 10 + (digit.charCodeAt(0) - 48)) % 97;
  }
  return rest === 1;
}

const NOT_A_PHONE = [
  /^\d{4}[-./]\d{1,2}[-./]\d{1,2}$/, // ISO-ish dates
  /^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$/, // dd/mm/yyyy, mm-dd-yy
  /^\d{1,3}(?:\.\d{1,3}){3}$/, // IPv4 addresses
];

/** Luhn checksum over a string of digits. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return digits.length > 0 && sum % 10 === 0;
}

/** Mask the longest Luhn-valid 13-19 digit span (on group boundaries) inside a digit run; repeat on the rest. */
function maskCardsInRun(run: string): string {
  const groups = run.split(/([ .-])/); // digits, sep, digits, ...
  const digitGroups: number[] = [];
  for (let i = 0; i < groups.length; i += 2) digitGroups.push(i);
  let best: { from: number; to: number; len: number } | null = null;
  for (let a = 0; a < digitGroups.length; a++) {
    let digits = "";
    for (let b = a; b < digitGroups.length; b++) {
      digits += groups[digitGroups[b]!]!;
      if (digits.length > 19) break;
      if (digits.length >= 13 && luhnValid(digits) && (best === null || digits.length > best.len)) {
        best = { from: digitGroups[a]!, to: digitGroups[b]!, len: digits.length };
      }
    }
  }
  if (best === null) return run;
  // Text around the card keeps its separators and may hold another card (two cards in one run).
  const before = groups.slice(0, best.from).join("");
  const after = groups.slice(best.to + 1).join("");
  const lead = /[ .-]$/.test(before) ? before.slice(-1) : "";
  const trail = /^[ .-]/.test(after) ? after.slice(0, 1) : "";
  const head = before.slice(0, before.length - lead.length);
  const tail = after.slice(trail.length);
  return (head === "" ? "" : maskCardsInRun(head)) + lead + "[card]" + trail + (tail === "" ? "" : maskCardsInRun(tail));
}

function maskPhones(text: string): string {
  return text.replace(PHONE, (m) => {
    const digits = m.replace(/\D/g, "").length;
    if (digits < 7 || digits > 15) return m;
    if (NOT_A_PHONE.some((re) => re.test(m))) return m;
    return "[phone]";
  });
}

const patternCache = new Map<string, RegExp>();

function customPattern(name: string, source: string): RegExp {
  let re = patternCache.get(source);
  if (re === undefined) {
    try {
      re = new RegExp(source, "g");
    } catch (e) {
      throw new PolicyError(`pii pattern \`${name}\` is not a valid regular expression: ${String(e)}`);
    }
    if (re.test("")) throw new PolicyError(`pii pattern \`${name}\` matches the empty string`);
    patternCache.set(source, re);
  }
  re.lastIndex = 0;
  return re;
}

/**
 * Mask PII in `text`, normalized first (`normalizeForMatching`). The custom patterns named in `classes` run first (they are the most specific), then
 * email, IBAN, card, IP, phone. A class that is neither built in nor a declared pattern throws PolicyError
 * rather than silently masking less than the spec asked for.
 */
export function maskPII(text: string, rules: PiiRules): string {
  const custom: [string, string][] = [];
  for (const c of rules.classes) {
    if (Object.prototype.hasOwnProperty.call(rules.patterns, c)) custom.push([c, rules.patterns[c]!]);
    else if (!(BUILTIN_CLASSES as readonly string[]).includes(c)) throw new PolicyError(`unknown pii class \`${c}\``);
  }
  let out = normalizeForMatching(text);
  for (const [name, source] of custom) out = out.replace(customPattern(name, source), `[${name}]`);
  const wanted = (c: string) => rules.classes.includes(c);
  if (wanted("email")) out = out.replace(EMAIL, "[email]");
  if (wanted("iban")) out = out.replace(IBAN, (m) => (ibanValid(m) ? "[iban]" : m));
  if (wanted("card")) out = out.replace(CARD_RUN, (run) => maskCardsInRun(run));
  if (wanted("ip")) out = out.replace(IPV4, "[ip]").replace(IPV6, "[ip]");
  if (wanted("phone")) out = maskPhones(out);
  return out;
}

/** maskPII applied to every string inside a JSON value (object keys are left alone); returns a new value. */
export function maskDeep<T>(value: T, rules: PiiRules): T {
  const walk = (v: unknown): unknown => {
    if (typeof v === "string") return maskPII(v, rules);
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === "object") {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = walk(x);
      return out;
    }
    return v;
  };
  return walk(value) as T;
}
