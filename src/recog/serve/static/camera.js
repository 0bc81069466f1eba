// recog's camera mode: the live picture from getUserMedia, frames to WS /v1/camera, answers drawn
// over the video as they arrive (app.js's drawing rules).  One frame in flight: the next frame is
// captured when the answer comes, so the picture never waits behind a queue; the server drops
// (and counts) any frame that arrives while the model is still busy.  Loaded after app.js.
"use strict";

const camera = {
  stream: null,        // the MediaStream
  socket: null,        // the WebSocket
  video: null,         // the <video> playing the stream (kept off screen; the canvas shows it)
  inFlight: false,     // a frame was sent and its answer has not come
  paused: false,
  sent: null,          // {blob, at} of the frame in flight
  rtts: [],            // [time, round-trip ms] of the last seconds
  answers: [],         // times answers arrived (frames per second)
  dropped: 0,          // as the server counts them
  last: null,          // {reply, blob}: the last answer and the frame it answers (tests compare)
  raf: 0,
};
window.recogCamera = camera;

const WINDOW_MS = 5000; // FPS and latency are over the last 5 seconds

async function startCamera() {
  showConf();
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setStatus("This browser offers no camera to the page (it needs https or localhost).", true);
    return;
  }
  try {
    camera.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640 }, audio: false });
  } catch (error) {
    setStatus(`No camera: ${error.message}`, true);
    return;
  }
  camera.video = $("video");
  camera.video.srcObject = camera.stream;
  await camera.video.play();
  camera.paused = false;
  $("camera-start").textContent = "Stop camera";
  $("camera-start").setAttribute("aria-pressed", "true");
  $("camera-pause").hidden = false;
  $("camera-pause").textContent = "Pause";
  $("camera-stats").hidden = false;
  $("stage").hidden = false;
  document.body.dataset.camera = "live";
  connect();
  camera.raf = requestAnimationFrame(paint);
}

function stopCamera() {
  cancelAnimationFrame(camera.raf);
  if (camera.socket) camera.socket.close();
  camera.socket = null;
  if (camera.stream) camera.stream.getTracks().forEach((t) => t.stop());
  camera.stream = null;
  camera.inFlight = false;
  $("camera-start").textContent = "Camera";
  $("camera-start").setAttribute("aria-pressed", "false");
  $("camera-pause").hidden = true;
  document.body.dataset.camera = "off";
}

function connect() {
  if (camera.socket) camera.socket.close();
  const m = model($("model").value);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = new URLSearchParams({ model: m ? m.name : "" });
  if (takesConf(m)) query.set("conf", conf());
  if (m && m.top_k) query.set("top_k", $("topk").value || "5");
  const socket = new WebSocket(`${scheme}://${location.host}/v1/camera?${query}`);
  socket.binaryType = "arraybuffer";
  camera.socket = socket;
  camera.inFlight = false;
  camera.rtts = [];
  camera.answers = [];
  socket.addEventListener("open", () => {
    if (state.apiKey) socket.send(JSON.stringify({ api_key: state.apiKey }));
    sendFrame();
  });
  socket.addEventListener("message", (event) => answered(JSON.parse(event.data)));
  socket.addEventListener("close", (event) => {
    if (camera.socket !== socket) return; // replaced by a newer connection
    camera.socket = null;
    if (event.code === 1008) {
      $("apikey-field").hidden = false;
      setStatus("The camera needs a valid API key.", true);
    } else if (event.code !== 1000 && event.code !== 1005 && camera.stream) {
      setStatus(`The camera connection closed: ${event.reason || event.code}`, true);
    }
  });
}

function takesConf(m) {
  return Boolean(m && (m.selection || []).includes("conf"));
}

function showConf() {
  $("camera-conf-field").hidden = !takesConf(model($("model").value));
}

function conf() {
  return (parseInt($("camera-conf").value, 10) / 100).toFixed(2);
}

function sendFrame() {
  const socket = camera.socket;
  if (!socket || socket.readyState !== WebSocket.OPEN || camera.inFlight || camera.paused) return;
  const video = camera.video;
  if (!video || !video.videoWidth) {
    setTimeout(sendFrame, 50);
    return;
  }
  // resized here to the model's input size: the server would shrink it anyway, and a 320 px
  // JPEG is a tenth of the bytes of a 640 px one
  const m = model($("model").value);
  const side = Math.max(video.videoWidth, video.videoHeight);
  const scale = Math.min(1, (m ? m.input_size : 640) / side);
  const off = document.createElement("canvas");
  off.width = Math.max(1, Math.round(video.videoWidth * scale));
  off.height = Math.max(1, Math.round(video.videoHeight * scale));
  off.getContext("2d").drawImage(video, 0, 0, off.width, off.height);
  camera.inFlight = true;
  off.toBlob((blob) => {
    if (!blob || camera.socket !== socket) {
      camera.inFlight = false;
      return;
    }
    camera.sent = { blob, at: performance.now() };
    blob.arrayBuffer().then((buffer) => socket.send(buffer));
  }, "image/jpeg", 0.85);
}

async function answered(reply) {
  const now = performance.now();
  const sent = camera.sent;
  if (reply.frame !== undefined || reply.error) {
    camera.inFlight = false;
  }
  if (reply.error) {
    setStatus(`Camera: ${reply.detail}`, true);
  } else {
    camera.dropped = reply.dropped;
    if (sent) camera.rtts.push([now, now - sent.at]);
    camera.answers.push(now);
    camera.last = { reply, blob: sent ? sent.blob : null };
    const seg = reply.result && reply.result.segmentation;
    const ids = seg ? await decodeMask(seg) : null;
    state.current = { response: reply, image: camera.video, roundTripMs: sent ? now - sent.at : 0 };
    state.maskIds = ids;
    renderLists(reply);
    $("opacity-field").hidden = !seg;
    setStatus(summary(reply));
    document.body.dataset.task = reply.task;
  }
  showStats(now);
  sendFrame();
}

function showStats(now) {
  camera.rtts = camera.rtts.filter(([t]) => now - t <= WINDOW_MS);
  camera.answers = camera.answers.filter((t) => now - t <= WINDOW_MS);
  const span = camera.answers.length > 1 ? (now - camera.answers[0]) / 1000 : 0;
  const fps = span > 0 ? (camera.answers.length - 1) / span : 0;
  const sorted = camera.rtts.map(([, ms]) => ms).sort((a, b) => a - b);
  const p50 = sorted.length ? sorted[Math.floor(sorted.length / 2)] : 0;
  const stats = $("camera-stats");
  stats.dataset.fps = fps.toFixed(2);
  stats.dataset.p50 = p50.toFixed(1);
  stats.dataset.dropped = String(camera.dropped);
  stats.textContent =
    `${fps.toFixed(1)} frames/s · round trip p50 ${p50.toFixed(0)} ms · dropped ${camera.dropped}`;
}

function paint() {
  // the live picture at the video's own size, with the last answer drawn over it
  const canvas = $("canvas");
  const video = camera.video;
  if (video && video.videoWidth) {
    if (canvas.width !== video.videoWidth || canvas.height !== video.videoHeight) {
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
    }
    if (state.current && state.current.image === video) draw();
    else canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  }
  if (camera.stream) camera.raf = requestAnimationFrame(paint);
}

function wireCamera() {
  $("camera-start").addEventListener("click", () => (camera.stream ? stopCamera() : startCamera()));
  $("camera-pause").addEventListener("click", () => {
    camera.paused = !camera.paused;
    $("camera-pause").textContent = camera.paused ? "Resume" : "Pause";
    $("camera-pause").setAttribute("aria-pressed", String(camera.paused));
    if (!camera.paused) sendFrame();
  });
  $("camera-conf").addEventListener("input", () => {
    $("camera-conf-value").textContent = conf();
    if (camera.socket && camera.socket.readyState === WebSocket.OPEN && takesConf(model($("model").value))) {
      camera.socket.send(JSON.stringify({ conf: Number(conf()) }));
    }
  });
  $("model").addEventListener("change", () => {
    showConf();
    if (camera.stream) {
      state.current = null;
      connect();
    }
  });
}

wireCamera();
