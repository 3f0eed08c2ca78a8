// Runs a JSONP answer in a fresh V8 context, the way a <script> element would, and reports
// every call of the callback.
//
// Usage: node jsonp_harness.js <callback name>   (the answer body on standard input)
// Prints: {"calls": [<first argument of each call>...], "error": <thrown error as text, or null>}
//
// The callback is installed at its full path (`angular.callbacks._0`, `cbs[3]`), creating the
// objects and arrays on the way, exactly as the JSONP library would have.
'use strict';
const vm = require('vm');
const fs = require('fs');

const name = process.argv[2];
const body = fs.readFileSync(0, 'utf8');
const calls = [];
const context = vm.createContext({});
const parts = [];
name.replace(/([A-Za-z_$][A-Za-z0-9_$]*)|\[(\d+)\]/g, (_, ident, index) => {
  parts.push(ident !== undefined ? ident : Number(index));
  return '';
});
let holder = context;
for (let i = 0; i < parts.length - 1; i++) {
  if (holder[parts[i]] === undefined) {
    holder[parts[i]] = typeof parts[i + 1] === 'number' ? [] : {};
  }
  holder = holder[parts[i]];
}
holder[parts[parts.length - 1]] = function (answer) {
  calls.push(answer);
};
let error = null;
try {
  vm.runInContext(body, context, { timeout: 2000 });
} catch (thrown) {
  error = String(thrown);
}
process.stdout.write(JSON.stringify({ calls: JSON.parse(JSON.stringify(calls)), error }));
