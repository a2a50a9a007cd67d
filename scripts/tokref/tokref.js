#!/usr/bin/env node
// Reference BERT WordPiece tokenization with Hugging Face's own tokenizers (the Rust library's Node
// binding), configured as BertTokenizerFast: BertNormalizer + BertPreTokenizer + WordPiece +
// BertProcessing, with the vocabulary's [PAD] [UNK] [CLS] [SEP] [MASK] as special added tokens.
//
// Usage:
//   node tokref.js --vocab vocab.txt [--lowercase true|false] [--strip-accents true|false|auto]
//                  [--chinese-chars true|false] [--max-tokens N] < inputs.json > outputs.json
//   node tokref.js --vocab vocab.txt --decode true|false < ids.json > texts.json
//
// inputs.json is a JSON array whose items are a string (a single text) or a [query, document] pair.
// The output is a JSON array with one {ids, type_ids, offsets, truncated} per input. Offsets are
// converted to UTF-8 byte offsets into the text each token came from (the binding reports them in
// Unicode code points).
//
// With --decode, the input is a JSON array of token-id arrays and the output the JSON array of their
// decodings by the WordPiece decoder ("##" prefix, cleanup on, as BertTokenizerFast's); the flag's
// value is skip_special_tokens.
//
// Pair truncation keeps the query and cuts the document first (HF's "only_second"); when the
// document cannot absorb all of the cut, the document is dropped and the query is cut (HF's
// "only_first" on an empty document), which is what embedd specifies.
'use strict';

const fs = require('fs');
const { Tokenizer, WordPiece, bertNormalizer, bertPreTokenizer, bertProcessing, wordPieceDecoder } = require('tokenizers');

function parseArgs(argv) {
  const opts = { vocab: null, lowercase: true, stripAccents: 'auto', chineseChars: true, maxTokens: 0, decode: null };
  const bool = (name, v) => {
    if (v === 'true') return true;
    if (v === 'false') return false;
    throw new Error(`${name}: want true or false, got ${JSON.stringify(v)}`);
  };
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i];
    const val = argv[i + 1];
    if (val === undefined) throw new Error(`${key}: missing value`);
    switch (key) {
      case '--vocab': opts.vocab = val; break;
      case '--lowercase': opts.lowercase = bool(key, val); break;
      case '--strip-accents': opts.stripAccents = val === 'auto' ? 'auto' : bool(key, val); break;
      case '--chinese-chars': opts.chineseChars = bool(key, val); break;
      case '--decode': opts.decode = bool(key, val); break;
      case '--max-tokens':
        opts.maxTokens = Number(val);
        if (!Number.isInteger(opts.maxTokens) || opts.maxTokens < 0) throw new Error(`${key}: bad count ${val}`);
        break;
      default: throw new Error(`unknown flag ${key}`);
    }
  }
  if (!opts.vocab) throw new Error('--vocab is required');
  if (opts.stripAccents === 'auto') opts.stripAccents = opts.lowercase;
  return opts;
}

async function build(opts) {
  const lines = fs.readFileSync(opts.vocab, 'utf8').split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  const vocab = {};
  lines.forEach((tok, id) => { vocab[tok] = id; });
  for (const need of ['[CLS]', '[SEP]', '[UNK]']) {
    if (!(need in vocab)) throw new Error(`vocabulary has no ${need}`);
  }
  const model = WordPiece.init(vocab, { unkToken: '[UNK]', continuingSubwordPrefix: '##', maxInputCharsPerWord: 100 });
  const tok = new Tokenizer(model);
  tok.setNormalizer(bertNormalizer({
    cleanText: true,
    handleChineseChars: opts.chineseChars,
    stripAccents: opts.stripAccents,
    lowercase: opts.lowercase,
  }));
  tok.setPreTokenizer(bertPreTokenizer());
  tok.setPostProcessor(bertProcessing(['[SEP]', vocab['[SEP]']], ['[CLS]', vocab['[CLS]']]));
  tok.addSpecialTokens(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'].filter((t) => t in vocab));
  tok.setDecoder(wordPieceDecoder('##', true));
  return tok;
}

// charToBytes maps every code-point index of s (0..number of code points) to its UTF-8 byte offset:
// the binding reports offsets in Unicode code points.
function charToBytes(s) {
  const map = [];
  let bytes = 0;
  for (const ch of s) {
    map.push(bytes);
    bytes += Buffer.byteLength(ch, 'utf8');
  }
  map.push(bytes);
  return map;
}

function convert(enc, texts, truncated) {
  const seqIds = enc.getSequenceIds();
  const specials = enc.getSpecialTokensMask();
  const maps = texts.map(charToBytes);
  const offsets = enc.getOffsets().map(([a, b], i) => {
    if (specials[i] === 1 && seqIds[i] == null) return [0, 0];
    const m = maps[seqIds[i] == null ? 0 : seqIds[i]];
    return [m[a], m[b]];
  });
  return { ids: enc.getIds(), type_ids: enc.getTypeIds(), offsets, truncated };
}

async function encodeOne(tok, opts, item) {
  if (typeof item === 'string') {
    const full = await tok.encode(item);
    if (opts.maxTokens > 0 && full.getLength() > opts.maxTokens) {
      tok.setTruncation(opts.maxTokens, { strategy: 'LongestFirst' });
      try {
        return convert(await tok.encode(item), [item], true);
      } finally {
        tok.disableTruncation();
      }
    }
    return convert(full, [item], false);
  }
  if (!Array.isArray(item) || item.length !== 2 || typeof item[0] !== 'string' || typeof item[1] !== 'string') {
    throw new Error(`input must be a string or a [query, document] pair: ${JSON.stringify(item).slice(0, 80)}`);
  }
  const [query, doc] = item;
  const full = await tok.encode(query, doc);
  if (!(opts.maxTokens > 0 && full.getLength() > opts.maxTokens)) return convert(full, [query, doc], false);
  tok.setTruncation(opts.maxTokens, { strategy: 'OnlySecond' });
  try {
    return convert(await tok.encode(query, doc), [query, doc], true);
  } catch (e) {
    // The document cannot take the whole cut: drop it and cut the query.
    tok.setTruncation(opts.maxTokens, { strategy: 'OnlyFirst' });
    return convert(await tok.encode(query, ''), [query, doc], true);
  } finally {
    tok.disableTruncation();
  }
}

async function main() {
  const opts = parseArgs(process.argv);
  const tok = await build(opts);
  const inputs = JSON.parse(fs.readFileSync(0, 'utf8'));
  if (!Array.isArray(inputs)) throw new Error('stdin must hold a JSON array');
  const out = [];
  if (opts.decode !== null) {
    for (const ids of inputs) out.push(await tok.decode(ids, opts.decode));
  } else {
    for (const item of inputs) out.push(await encodeOne(tok, opts, item));
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stderr.write(`tokref: ${e && e.message ? e.message : e}\n`);
  process.exit(1);
});
