#!/usr/bin/env node
// Prints how Hugging Face's BertNormalizer and BertPreTokenizer treat every Unicode code point, for
// embedd's tokenizer tables and tests (its Unicode tables are older than Go's in places, newer in
// others). Output: a JSON array of [codePoint, class, stripped, lowered] for every code point (no
// surrogates) whose class is not '.' or whose accent stripping or lower-casing changes it; class is
// 'd' (removed by cleaning), 'w' (whitespace), 'p' (punctuation: a word of its own) or '.' (part of a
// word); stripped and lowered are the results of NFD + removing Mn, and of lower-casing, or null
// when the character is unchanged.
'use strict';

const { bertNormalizer, bertPreTokenizer } = require('tokenizers');

const clean = bertNormalizer({ cleanText: true, handleChineseChars: false, stripAccents: false, lowercase: false });
const strip = bertNormalizer({ cleanText: false, handleChineseChars: false, stripAccents: true, lowercase: false });
const lower = bertNormalizer({ cleanText: false, handleChineseChars: false, stripAccents: false, lowercase: true });
const pre = bertPreTokenizer();

const out = [];
for (let cp = 0; cp <= 0x10ffff; cp++) {
  if (cp >= 0xd800 && cp <= 0xdfff) continue;
  const c = String.fromCodePoint(cp);
  const cleaned = clean.normalizeString(c);
  let cls = '.';
  if (cleaned === '') cls = 'd';
  else if (cleaned === ' ') cls = 'w';
  else if (pre.preTokenizeString('a' + c + 'b').length === 3) cls = 'p';
  const s = strip.normalizeString(c);
  const l = lower.normalizeString(c);
  if (cls !== '.' || s !== c || l !== c) out.push([cp, cls, s === c ? null : s, l === c ? null : l]);
}
process.stdout.write(JSON.stringify(out) + '\n');
