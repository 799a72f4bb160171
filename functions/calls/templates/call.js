(() => {
  "use strict";
  const cfg = JSON.parse(document.getElementById("call-config").textContent);
  const state = document.getElementById("state");
  const local = document.getElementById("local");
  const remote = document.getElementById("remote");
  const notice = document.getElementById("notice");
  const labels = {waiting: "Waiting for the other person", connecting: "Connecting…", connected: "Connected", ended: "Call ended"};
  const show = (s) => { document.body.dataset.state = s; state.textContent = labels[s] || s; };
  // A renegotiation after the media flows does not make the call look unconnected.
  const connecting = () => { if (pc.connectionState !== "connected") show("connecting"); };
  const servers = cfg.stun.length ? [{urls: cfg.stun}] : [];
  const pc = new RTCPeerConnection({iceServers: servers});
  window.callPeer = pc;
  // Perfect negotiation: the customer is polite (rolls back its offer on a collision).
  const polite = cfg.role === "customer";
  let makingOffer = false;
  let ignoreOffer = false;
  let ended = false;
  const ws = new WebSocket(cfg.signaling + "?token=" + encodeURIComponent(cfg.token));
  const send = (type, payload) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({action: "signal", type, payload}));
  };
  const offer = async () => {
    try {
      makingOffer = true;
      await pc.setLocalDescription();
      send("offer", pc.localDescription.toJSON());
    } catch (e) {
      console.warn("offer", e);
    } finally {
      makingOffer = false;
    }
  };
  // API Gateway closes a WebSocket idle for 10 minutes (its quota, not adjustable): a
  // ping every 4 minutes keeps signaling open for the whole call (answered by nobody).
  const keepAlive = setInterval(() => {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({action: "ping"}));
  }, 4 * 60 * 1000);
  const end = (tell) => {
    if (ended) return;
    ended = true;
    clearInterval(keepAlive);
    if (tell) send("bye");
    pc.getSenders().forEach((s) => s.track && s.track.stop());
    pc.close();
    ws.close();
    show("ended");
  };
  pc.onnegotiationneeded = offer;
  pc.onicecandidate = ({candidate}) => { if (candidate) send("candidate", candidate.toJSON()); };
  pc.ontrack = ({streams}) => { if (remote.srcObject !== streams[0]) remote.srcObject = streams[0]; };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "connected") show("connected");
    else if (pc.connectionState === "failed") end(true);
  };
  ws.onmessage = async ({data}) => {
    const msg = JSON.parse(data);
    if (msg.type === "peer_joined") {
      connecting();
      // The offer made while alone went nowhere: send it (or a new one) again.
      if (pc.signalingState === "have-local-offer") send("offer", pc.localDescription.toJSON());
      else await offer();
      return;
    }
    if (msg.type === "peer_left" || msg.type === "bye") { end(false); return; }
    try {
      if (msg.type === "offer" || msg.type === "answer") {
        const description = msg.payload;
        const collision = description.type === "offer" && (makingOffer || pc.signalingState !== "stable");
        ignoreOffer = !polite && collision;
        if (ignoreOffer) return;
        connecting();
        await pc.setRemoteDescription(description);
        if (description.type === "offer") {
          await pc.setLocalDescription();
          send("answer", pc.localDescription.toJSON());
        }
      } else if (msg.type === "candidate") {
        try { await pc.addIceCandidate(msg.payload); } catch (e) { if (!ignoreOffer) throw e; }
      }
    } catch (e) {
      console.warn("signal", e);
    }
  };
  ws.onopen = async () => {
    show("waiting");
    try {
      const stream = await navigator.mediaDevices.getUserMedia({video: true, audio: true});
      local.srcObject = stream;
      stream.getTracks().forEach((t) => pc.addTrack(t, stream));
    } catch (e) {
      // Kept on screen: the call may still connect, but the other side will not see or
      // hear this one.
      notice.textContent = e.name === "NotAllowedError"
        ? "Your camera and microphone are blocked: allow them for this page, then reload."
        : "No camera or microphone could be used: the other person will not see or hear you.";
      notice.hidden = false;
    }
  };
  ws.onclose = () => { if (!ended) end(false); };
  document.getElementById("mute").addEventListener("click", (ev) => {
    const tracks = pc.getSenders().map((s) => s.track).filter((t) => t && t.kind === "audio");
    const muted = tracks.some((t) => t.enabled);
    tracks.forEach((t) => { t.enabled = !muted; });
    ev.currentTarget.textContent = muted ? "Unmute" : "Mute";
    ev.currentTarget.classList.toggle("on", muted);
  });
  document.getElementById("hangup").addEventListener("click", () => end(true));
})();
