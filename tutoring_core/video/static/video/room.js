// The live session room (issue 15): pre-join checks, then a full mesh of RTCPeerConnections
// signaled over the room's websocket. Plain JS, no build step.
"use strict";
(function () {
  const config = JSON.parse(document.getElementById("video-config").textContent);
  const params = new URLSearchParams(location.search);
  const relayOnly = params.get("ice") === "relay"; // for networks where only TURN gets through
  const $ = (id) => document.getElementById(id);
  const room = { pcs: new Map(), names: new Map(), state: "idle", socket: null, stream: null, screen: null };
  window.videoRoom = room; // read by the browser tests (connection state, stats)

  const REASONS = {
    4001: "Your join link has expired or is not valid; reload the page to join again.",
    4003: "Only the session's tutor and booked students can join this room.",
    4004: "This room does not exist.",
    4009: "This session was cancelled; its room is closed.",
    4010: "This session has ended; its room is closed.",
    4011: "This room is not open yet.",
    4029: "This room is full.",
  };

  function status(text, state) {
    const el = $("room-status");
    el.textContent = text;
    if (state) { el.dataset.state = state; room.state = state; }
  }
  function problem(text) {
    const el = $("room-problem");
    el.textContent = text;
    el.hidden = !text;
  }
  function framed() {
    try { return window.self !== window.top; } catch (e) { return true; }
  }
  function frameMayUse(feature) {
    const policy = document.permissionsPolicy || document.featurePolicy;
    return !policy || policy.allowsFeature(feature);
  }
  function csrf() {
    const input = document.querySelector("#csrf input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }
  async function fetchToken() {
    const response = await fetch(config.tokenUrl, {
      method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrf() },
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.reason || "The room refused to let you join.");
    return body;
  }

  function mediaMessage(error, what) {
    if (!error) return "ready";
    if (error.name === "NotAllowedError" || error.name === "SecurityError") {
      return framed() ? `blocked in this frame — open the room in a new window` :
        `blocked — allow the ${what} for this site in your browser's address bar, then check again`;
    }
    if (error.name === "NotFoundError" || error.name === "OverconstrainedError") return `no ${what} found`;
    if (error.name === "NotReadableError") return `the ${what} is in use by another application`;
    return `not available (${error.name})`;
  }

  async function checkMedia() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      $("check-camera").textContent = $("check-microphone").textContent =
        "not available on this page (it needs https or a newer browser)";
      return null;
    }
    if (framed() && (!frameMayUse("camera") || !frameMayUse("microphone"))) $("new-window").hidden = false;
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
      $("check-camera").textContent = $("check-microphone").textContent = "ready";
      return stream;
    } catch (both) {
      // Find out which one is blocked, and join with whatever works.
      let stream = null;
      for (const [kind, label, id] of [["video", "camera", "check-camera"], ["audio", "microphone", "check-microphone"]]) {
        try {
          const one = await navigator.mediaDevices.getUserMedia({ [kind]: true });
          $(id).textContent = "ready";
          if (stream) one.getTracks().forEach((t) => stream.addTrack(t)); else stream = one;
        } catch (error) {
          $(id).textContent = mediaMessage(error, label);
          if (framed()) $("new-window").hidden = false;
        }
      }
      return stream;
    }
  }

  async function checkNetwork(iceServers) {
    // Gather candidates once: a relay candidate proves TURN answers; host/srflx ones a direct path.
    const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: relayOnly ? "relay" : "all" });
    const kinds = new Set();
    pc.createDataChannel("probe");
    pc.onicecandidate = (e) => { if (e.candidate && e.candidate.type) kinds.add(e.candidate.type); };
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, 5000);
      pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === "complete") { clearTimeout(timer); resolve(); } };
    });
    pc.close();
    if (kinds.has("relay")) return "ready (relay server reachable)";
    if (kinds.size && !relayOnly) return "ready (direct)";
    return "blocked — no route for media; your network may block it. Ask your school to allow the relay server.";
  }

  async function prejoin() {
    problem("");
    status("Checking your camera, microphone and connection…", "checking");
    $("join").disabled = true;
    if (room.stream) room.stream.getTracks().forEach((t) => t.stop());
    room.stream = await checkMedia();
    if (room.stream) $("preview").srcObject = room.stream;
    let token;
    try {
      token = await fetchToken();
      $("check-network").textContent = await checkNetwork(token.iceServers);
    } catch (error) {
      $("check-network").textContent = "failed";
      problem(error.message);
      status("You cannot join this room.", "refused");
      return;
    }
    $("join").disabled = false;
    status(room.stream ? "Ready to join." : "You can join without camera and microphone.", "ready");
  }

  // --- the call --------------------------------------------------------------------------------

  function send(message) {
    if (room.socket && room.socket.readyState === WebSocket.OPEN) room.socket.send(JSON.stringify(message));
  }
  function updateConnected() {
    const states = [...room.pcs.values()].map((pc) => pc.connectionState);
    if (states.includes("connected")) status(`Connected (${states.filter((s) => s === "connected").length + 1} in the call).`, "connected");
    else if (states.length) status("Connecting…", "connecting");
    else status("In the room; waiting for others to join.", "joined");
  }
  function tileFor(id) {
    let tile = document.querySelector(`[data-peer="${id}"]`);
    if (!tile) {
      tile = document.createElement("figure");
      tile.className = "tile";
      tile.dataset.peer = id;
      const video = document.createElement("video");
      video.autoplay = true; video.playsInline = true;
      video.setAttribute("aria-label", room.names.get(id) || "Participant");
      const caption = document.createElement("figcaption");
      caption.textContent = room.names.get(id) || "Participant";
      tile.append(video, caption);
      $("videos").append(tile);
    }
    return tile;
  }
  function peer(id, iceServers) {
    if (room.pcs.has(id)) return room.pcs.get(id);
    const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: relayOnly ? "relay" : "all" });
    room.pcs.set(id, pc);
    if (room.stream) room.stream.getTracks().forEach((t) => pc.addTrack(t, room.stream));
    else { pc.addTransceiver("audio", { direction: "recvonly" }); pc.addTransceiver("video", { direction: "recvonly" }); }
    pc.onicecandidate = (e) => { if (e.candidate) send({ type: "signal", to: id, data: { candidate: e.candidate.toJSON() } }); };
    pc.ontrack = (e) => { tileFor(id).querySelector("video").srcObject = e.streams[0] || new MediaStream([e.track]); };
    pc.onconnectionstatechange = updateConnected;
    return pc;
  }
  function drop(id) {
    const pc = room.pcs.get(id);
    if (pc) pc.close();
    room.pcs.delete(id);
    const tile = document.querySelector(`[data-peer="${id}"]`);
    if (tile) tile.remove();
    updateConnected();
  }
  function chatLine(name, text) {
    const li = document.createElement("li");
    const who = document.createElement("strong");
    who.textContent = name + ": ";
    li.append(who, document.createTextNode(text));
    $("chat-log").append(li);
  }
  function waitingEntry(person, name) {
    if (document.querySelector(`[data-waiting="${person}"]`)) return;
    $("waiting-empty").hidden = true;
    const li = document.createElement("li");
    li.dataset.waiting = person;
    li.append(document.createTextNode(name + " "));
    const button = document.createElement("button");
    button.type = "button"; button.textContent = "Admit";
    button.setAttribute("aria-label", `Admit ${name}`);
    button.onclick = () => send({ type: "admit", person });
    li.append(button);
    $("waiting").append(li);
  }

  async function join() {
    $("join").disabled = true;
    let token;
    try { token = await fetchToken(); } catch (error) { problem(error.message); status("You cannot join this room.", "refused"); return; }
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}${token.wsPath}?token=${encodeURIComponent(token.token)}`);
    room.socket = socket;
    let refused = "";
    $("prejoin").hidden = true;
    $("call").hidden = false;
    $("local-video").srcObject = room.stream;
    status("Joining…", "joining");
    socket.onmessage = async (event) => {
      const msg = JSON.parse(event.data);
      if (msg.type === "refused") { refused = msg.reason; problem(msg.reason); status("You are not in the room.", "refused"); }
      else if (msg.type === "waiting") status("Waiting for the tutor to let you in…", "waiting");
      else if (msg.type === "knock") waitingEntry(msg.person, msg.name);
      else if (msg.type === "admitted") { const li = document.querySelector(`[data-waiting="${msg.person}"]`); if (li) li.remove(); }
      else if (msg.type === "welcome") {
        room.you = msg.you;
        updateConnected();
        for (const p of msg.peers) {
          room.names.set(p.id, p.name);
          const pc = peer(p.id, token.iceServers);
          await pc.setLocalDescription(await pc.createOffer());
          send({ type: "signal", to: p.id, data: { description: pc.localDescription.toJSON() } });
        }
      } else if (msg.type === "peer-joined") { room.names.set(msg.id, msg.name); chatLine("Room", `${msg.name} joined.`); }
      else if (msg.type === "peer-left") drop(msg.id);
      else if (msg.type === "signal") {
        const pc = peer(msg.from, token.iceServers);
        const data = msg.data;
        if (data.description) {
          await pc.setRemoteDescription(data.description);
          if (data.description.type === "offer") {
            await pc.setLocalDescription(await pc.createAnswer());
            send({ type: "signal", to: msg.from, data: { description: pc.localDescription.toJSON() } });
          }
        } else if (data.candidate) {
          try { await pc.addIceCandidate(data.candidate); } catch (e) { /* a candidate for a closed transport */ }
        }
      } else if (msg.type === "chat") chatLine(msg.name, msg.text);
      else if (msg.type === "media") {
        const tile = document.querySelector(`[data-peer="${msg.id}"] figcaption`);
        if (tile) {
          tile.textContent = (room.names.get(msg.id) || "Participant") + (msg.muted ? " (muted)" : "") +
            (msg.screen ? " (sharing their screen)" : msg.camera ? "" : " (camera off)");
        }
      } else if (msg.type === "error") problem(msg.reason);
    };
    socket.onclose = (event) => {
      [...room.pcs.keys()].forEach(drop);
      const reason = refused || REASONS[event.code];
      if (reason) { problem(reason); status("You are not in the room.", "refused"); }
      else if (room.state !== "left") status("Disconnected from the room. Reload the page to join again.", "disconnected");
    };
  }

  function mediaState() {
    const audio = room.stream && room.stream.getAudioTracks()[0];
    const video = room.stream && room.stream.getVideoTracks()[0];
    send({ type: "media", muted: !audio || !audio.enabled, camera: !!video && video.enabled, screen: !!room.screen });
  }
  function toggle(button, on, labels) {
    button.setAttribute("aria-pressed", on ? "true" : "false");
    button.textContent = on ? labels[1] : labels[0];
  }
  async function shareScreen() {
    const button = $("screen");
    const senders = () => [...room.pcs.values()].map((pc) => pc.getSenders().find((s) => s.track && s.track.kind === "video")).filter(Boolean);
    const camera = room.stream && room.stream.getVideoTracks()[0];
    if (room.screen) {
      room.screen.getTracks().forEach((t) => t.stop());
      room.screen = null;
      for (const s of senders()) await s.replaceTrack(camera || null);
      $("local-video").srcObject = room.stream;
      toggle(button, false, ["Share screen", "Stop sharing"]);
    } else {
      try { room.screen = await navigator.mediaDevices.getDisplayMedia({ video: true }); }
      catch (error) { problem(framed() ? "Screen sharing is blocked in this frame; open the room in a new window." : "Screen sharing was not started."); return; }
      const track = room.screen.getVideoTracks()[0];
      for (const s of senders()) await s.replaceTrack(track);
      $("local-video").srcObject = room.screen;
      track.onended = () => { if (room.screen) shareScreen(); };
      toggle(button, true, ["Share screen", "Stop sharing"]);
    }
    mediaState();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("recheck").onclick = prejoin;
    $("join").onclick = join;
    $("mute").onclick = () => {
      const track = room.stream && room.stream.getAudioTracks()[0];
      if (!track) return;
      track.enabled = !track.enabled;
      toggle($("mute"), !track.enabled, ["Mute", "Unmute"]);
      mediaState();
    };
    $("camera").onclick = () => {
      const track = room.stream && room.stream.getVideoTracks()[0];
      if (!track) return;
      track.enabled = !track.enabled;
      toggle($("camera"), !track.enabled, ["Camera off", "Camera on"]);
      mediaState();
    };
    $("screen").onclick = shareScreen;
    $("leave").onclick = () => { status("You left the room.", "left"); if (room.socket) room.socket.close(1000); };
    if ($("end")) $("end").onclick = () => send({ type: "end" });
    $("chat-form").onsubmit = (event) => {
      event.preventDefault();
      const text = $("chat-text").value.trim();
      if (text) send({ type: "chat", text });
      $("chat-text").value = "";
    };
    prejoin();
  });
})();
