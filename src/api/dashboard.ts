/** A first dashboard: the cluster as this agent sees it, refreshed every 2 s from the API. */
export const dashboardHtml = `<!doctype html>
<html><head><meta charset="utf-8"><title>Discovery</title>
<style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}.dead{color:#b00}.suspect{color:#c80}</style>
</head><body><h1>Discovery</h1><p id="me"></p><table id="nodes"><thead><tr><th>peer</th><th>state</th><th>vCPU used/cap</th><th>demand</th><th>MiB used/cap</th><th>VMs</th></tr></thead><tbody></tbody></table>
<script>
async function refresh(){
  const h=await (await fetch('/v1/health')).json();
  document.getElementById('me').textContent='agent '+h.peerId+' · up '+h.uptimeS+' s';
  const nodes=await (await fetch('/v1/nodes')).json();
  const tb=document.querySelector('#nodes tbody');tb.innerHTML='';
  for(const n of nodes){const tr=document.createElement('tr');tr.className=n.state;
    for(const v of [n.peerId.slice(-10),n.state,n.used.cpu+'/'+n.capacity.cpu,(n.demand??0).toFixed(2),n.used.memMiB+'/'+n.capacity.memMiB,n.vmCount]){const td=document.createElement('td');td.textContent=v;tr.appendChild(td)}
    tb.appendChild(tr)}
}
refresh();setInterval(refresh,2000);
</script></body></html>`
