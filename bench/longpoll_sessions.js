// Router memory per idle long-poll session: opens N long-poll transports at
// http://127.0.0.1:PORT/lp, joins realm1 on each (HELLO, WELCOME), prints the RSS growth of
// the router process PID. Plain Node (no packages):  node bench/longpoll_sessions.js PORT PID N
const http = require('http');
const fs = require('fs');
const [port, pid, n] = process.argv.slice(2).map(Number);
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const rss = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
function post(path, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ port, path, method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
      let data = '';
      res.on('data', (c) => (data += c));
      res.on('end', () => resolve([res.statusCode, data]));
    });
    req.on('error', reject);
    req.end(body || '');
  });
}
async function one() {
  const [s, open] = await post('/lp/open', '{"protocols":["wamp.2.json"]}');
  if (s !== 200) throw new Error('open ' + s);
  const id = JSON.parse(open).transport;
  await post(`/lp/${id}/send`, '[1,"realm1",{"roles":{"subscriber":{}}}]');
  const [r, w] = await post(`/lp/${id}/receive`);
  if (r !== 200 || JSON.parse(w)[0] !== 2) throw new Error('welcome ' + r + w);
}
(async () => {
  const before = rss();
  for (let i = 0; i < n; i += 64) await Promise.all(Array.from({ length: Math.min(64, n - i) }, one));
  agent.destroy();
  await new Promise((r) => setTimeout(r, 500));
  const after = rss();
  console.log(`long-poll: RSS ${before} KiB -> ${after} KiB: ${((after - before) / n).toFixed(2)} KiB per idle session (${n})`);
})();
