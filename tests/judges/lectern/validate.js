#!/usr/bin/env node
// CancerModels.org's validator engine as a test judge: the lectern client (the library the submission service
// PDCMFinder/pdcm-lectern-validator runs) checks a submission against a lectern dictionary.
//
//   node validate.js DICTIONARY.json SUBMISSION
//
// SUBMISSION is a workbook (.xlsx), read the way the submission service reads an upload (SheetJS `sheet_to_json`
// with formatted text, rows whose `Field` cell starts with `#` dropped: the template's description rows), or a
// folder of `<sheet>.csv` / `<sheet>.tsv` files (every value kept as text). Like the service, a sheet the
// dictionary does not know is refused. Every error is printed as one JSON object per line on stdout, a summary on
// stderr; the exit status is 0 when the submission is valid, 1 when it has errors, 2 when it cannot be read.
'use strict';

const fs = require('fs');
const path = require('path');
const XLSX = require('xlsx');

// The lectern client logs to stdout (its log level on import, winston after): stdout is kept for the errors.
const stdoutWrite = process.stdout.write.bind(process.stdout);
process.stdout.write = process.stderr.write.bind(process.stderr);
// `functions` of the package index (what the submission service imports), without the index's worker pool.
const functions = require('@overturebio-stack/lectern-client/lib/schema-functions');

function fail(message) {
  process.stderr.write(`validate.js: ${message}\n`);
  process.exit(2);
}

// RFC 4180 text (quoted fields, doubled quotes, CRLF or LF) into rows of cells.
function parseDelimited(text, separator) {
  const rows = [];
  let row = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i += 1; } else if (c === '"') { quoted = false; } else { cell += c; }
    } else if (c === '"' && cell === '') {
      quoted = true;
    } else if (c === separator) {
      row.push(cell); cell = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i += 1;
      row.push(cell); rows.push(row); row = []; cell = '';
    } else {
      cell += c;
    }
  }
  if (cell !== '' || row.length > 0) { row.push(cell); rows.push(row); }
  return rows.filter((r) => r.some((v) => v !== ''));
}

// A table file into records; an empty cell is left out of its record, as SheetJS does for a workbook.
function readDelimited(file, separator) {
  const text = fs.readFileSync(file, 'utf8').replace(/^\uFEFF/, '');
  const [header, ...body] = parseDelimited(text, separator);
  if (!header) return [];
  return body.map((cells) => {
    const record = {};
    header.forEach((name, i) => {
      if (cells[i] !== undefined && cells[i] !== '') record[name] = cells[i];
    });
    return record;
  });
}

// Sheet name -> { rows, lineOffset } (lineOffset turns a record index into the sheet's line number).
function readSubmission(input) {
  const sheets = new Map();
  const stat = fs.statSync(input, { throwIfNoEntry: false });
  if (!stat) fail(`${input}: no such file or folder`);
  if (stat.isDirectory()) {
    for (const name of fs.readdirSync(input).sort()) {
      const ext = path.extname(name).toLowerCase();
      if (ext !== '.csv' && ext !== '.tsv') continue;
      const sheet = path.basename(name, path.extname(name));
      if (sheets.has(sheet)) fail(`${input}: two files for the sheet ${sheet}`);
      sheets.set(sheet, { rows: readDelimited(path.join(input, name), ext === '.tsv' ? '\t' : ','), lineOffset: 2 });
    }
    return sheets;
  }
  const workbook = XLSX.readFile(input);
  for (const sheet of workbook.SheetNames) {
    const all = XLSX.utils.sheet_to_json(workbook.Sheets[sheet], { raw: false });
    const rows = all.filter((r) => !('Field' in r && String(r.Field).startsWith('#')));
    sheets.set(sheet, { rows, lineOffset: all.length - rows.length + 2 });
  }
  return sheets;
}

function main() {
  const [dictionaryFile, input] = process.argv.slice(2);
  if (!dictionaryFile || !input) fail('usage: node validate.js DICTIONARY.json SUBMISSION(.xlsx|folder)');
  let dictionary;
  try {
    dictionary = JSON.parse(fs.readFileSync(dictionaryFile, 'utf8'));
  } catch (err) {
    fail(`${dictionaryFile}: ${err.message}`);
  }
  const sheets = readSubmission(input);
  if (sheets.size === 0) fail(`${input}: no sheets`);
  const known = new Set(dictionary.schemas.map((s) => s.name));
  const errors = [];
  const records = {};
  for (const [sheet, { rows }] of sheets) {
    if (known.has(sheet)) {
      records[sheet] = rows;
    } else {
      errors.push({ schema: sheet, errorType: 'SCHEMA_NOT_IN_DICTIONARY', message: `Sheet ${sheet} is not in the dictionary` });
    }
  }
  const results = functions.processSchemas(dictionary, records);
  let count = 0;
  for (const [schema, result] of Object.entries(results)) {
    count += result.processedRecords.length;
    for (const e of result.validationErrors) {
      errors.push({
        schema,
        errorType: e.errorType,
        index: e.index,
        line: e.index + sheets.get(schema).lineOffset,
        fieldName: e.fieldName,
        info: e.info,
        message: e.message,
      });
    }
  }
  for (const e of errors) stdoutWrite(`${JSON.stringify(e)}\n`);
  process.stderr.write(
    `${dictionary.name} ${dictionary.version}: ${count} record(s) in ${Object.keys(records).length} sheet(s), ` +
    `${errors.length} error(s)\n`,
  );
  process.exit(errors.length > 0 ? 1 : 0);
}

main();
