// The browser phone: WebRTC audio to the switch, signalling as JSON on /ws/phone.
// The browser always makes the offer (it asks for the microphone only when a call needs
// it) and waits for its host candidates before sending it (no trickle ICE).
"use strict";

const phone = {
  socket: null,
  pc: null,
  mic: null,
  call: null,
  muted: false,
  meterTimer: null,

  $(selector) {
    return document.querySelector(selector);
  },

  say(text) {
    phone.$("#phone-status").textContent = text;
  },

  problem(text) {
    phone.$("#phone-error").textContent = text;
  },

  send(message) {
    if (phone.socket && phone.socket.readyState === WebSocket.OPEN) {
      phone.socket.send(JSON.stringify(message));
    }
  },

  on() {
    if (phone.socket) {
      return;
    }
    // Made on this click (a user gesture), so that the ring may sound later.
    phone.ringContext = phone.ringContext || new AudioContext();
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(scheme + "//" + window.location.host + "/ws/phone");
    phone.socket = socket;
    phone.say("connecting");
    phone.problem("");
    socket.addEventListener("message", (event) => phone.received(JSON.parse(event.data)));
    socket.addEventListener("close", () => {
      phone.socket = null;
      phone.ring(false);
      phone.endMedia();
      phone.call = null;
      phone.say("off");
      phone.buttons();
    });
    phone.buttons();
  },

  off() {
    if (phone.socket) {
      phone.socket.close();
    }
  },

  received(message) {
    if (message.type === "ready") {
      phone.say("ready");
      phone.buttons();
    } else if (message.type === "sdp") {
      if (phone.pc) {
        phone.pc
          .setRemoteDescription({ type: "answer", sdp: message.sdp })
          .catch(() => phone.failed("the audio connection failed"));
      }
    } else if (message.type === "call") {
      phone.call = message.state === "ended" ? null : message;
      const held = message.held ? " (held)" : "";
      phone.say(message.state === "ended" ? "ready" : message.state + held);
      phone.$("#phone-party").textContent = message.state === "ended" ? "-" : message.party;
      const ringing = message.state === "ringing" && message.direction === "in";
      phone.$("#phone-ring").hidden = !ringing;
      phone.ring(ringing);
      if (message.state === "ended") {
        phone.endMedia();
        if (message.why && message.why !== "hangup" && message.why !== "remote hangup") {
          phone.problem("call ended: " + message.why);
        }
      }
      phone.buttons();
    } else if (message.type === "error") {
      phone.problem(message.message);
    }
  },

  // The incoming-call ring: 425 Hz, one second on, two off, until answered or gone.
  ring(on) {
    if (phone.ringTimer) {
      window.clearInterval(phone.ringTimer);
      phone.ringTimer = null;
    }
    const context = phone.ringContext;
    if (!on || !context) {
      return;
    }
    const burst = () => {
      const tone = context.createOscillator();
      const gain = context.createGain();
      tone.frequency.value = 425;
      gain.gain.value = 0.2;
      tone.connect(gain).connect(context.destination);
      tone.start();
      tone.stop(context.currentTime + 1);
    };
    burst();
    phone.ringTimer = window.setInterval(burst, 3000);
  },

  failed(text) {
    phone.problem(text);
    phone.endMedia();
  },

  // The microphone and a peer connection with our offer; null when refused or failed.
  async offer() {
    phone.problem("");
    try {
      phone.mic = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
    } catch (error) {
      const refused = error && (error.name === "NotAllowedError" || error.name === "SecurityError");
      phone.problem(
        refused
          ? "Microphone permission was refused: allow the microphone for this site to make calls."
          : "No microphone could be opened (" + (error && error.name) + ")."
      );
      return null;
    }
    phone.muted = false;
    const pc = new RTCPeerConnection({ iceServers: [] });
    phone.pc = pc;
    for (const track of phone.mic.getAudioTracks()) {
      pc.addTrack(track, phone.mic);
    }
    pc.addEventListener("track", (event) => phone.play(event.streams[0] || new MediaStream([event.track])));
    pc.addEventListener("connectionstatechange", () => {
      if (pc.connectionState === "failed") {
        phone.failed("The audio connection failed (no network path between this browser and the server).");
        phone.send({ type: "hangup" });
      }
    });
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
      if (pc.iceGatheringState === "complete") {
        resolve();
        return;
      }
      const timer = window.setTimeout(resolve, 3000);
      pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") {
          window.clearTimeout(timer);
          resolve();
        }
      });
    });
    return pc.localDescription.sdp;
  },

  play(stream) {
    const audio = phone.$("#phone-audio");
    audio.srcObject = stream;
    audio.play().catch(() => {});
    phone.meter(stream);
  },

  // The loudest frequency of what the far end sends, shown beside the call (and read by
  // the tests): a sign that audio arrives.
  meter(stream) {
    const context = new AudioContext();
    const analyser = context.createAnalyser();
    analyser.fftSize = 4096;
    context.createMediaStreamSource(stream).connect(analyser);
    const bins = new Float32Array(analyser.frequencyBinCount);
    phone.stopMeter();
    phone.meterTimer = window.setInterval(() => {
      analyser.getFloatFrequencyData(bins);
      let best = 0;
      for (let i = 1; i < bins.length; i++) {
        if (bins[i] > bins[best]) {
          best = i;
        }
      }
      const hz = bins[best] > -60 ? Math.round((best * context.sampleRate) / analyser.fftSize) : 0;
      phone.$("#phone-meter").textContent = hz ? hz + " Hz" : "quiet";
      document.body.dataset.phoneHeard = String(hz);
    }, 200);
    phone.meterContext = context;
  },

  stopMeter() {
    if (phone.meterTimer) {
      window.clearInterval(phone.meterTimer);
      phone.meterTimer = null;
    }
    if (phone.meterContext) {
      phone.meterContext.close();
      phone.meterContext = null;
    }
  },

  endMedia() {
    phone.stopMeter();
    if (phone.pc) {
      phone.pc.close();
      phone.pc = null;
    }
    if (phone.mic) {
      for (const track of phone.mic.getTracks()) {
        track.stop();
      }
      phone.mic = null;
    }
  },

  async dial() {
    const number = phone.$("#phone-number").value.trim();
    if (!number) {
      phone.problem("Type a number to call.");
      return;
    }
    const sdp = await phone.offer();
    if (sdp) {
      phone.send({ type: "call", number, sdp });
    }
  },

  async answer() {
    const sdp = await phone.offer();
    if (sdp) {
      phone.send({ type: "answer", sdp });
    } else {
      phone.send({ type: "decline" });
    }
  },

  key(digit) {
    if (phone.call && phone.call.state === "up") {
      phone.send({ type: "dtmf", digits: digit });
    } else {
      phone.$("#phone-number").value += digit;
    }
  },

  mute() {
    phone.muted = !phone.muted;
    if (phone.mic) {
      for (const track of phone.mic.getAudioTracks()) {
        track.enabled = !phone.muted;
      }
    }
    phone.$("#phone-mute").textContent = phone.muted ? "Unmute" : "Mute";
  },

  buttons() {
    const on = phone.socket !== null;
    const call = phone.call;
    const up = call !== null && call.state === "up";
    phone.$("#phone-on").hidden = on;
    phone.$("#phone-off").hidden = !on;
    phone.$("#phone-call").disabled = !on || call !== null;
    phone.$("#phone-hangup").disabled = call === null;
    phone.$("#phone-answer").disabled = !(call && call.direction === "in" && call.state === "ringing");
    phone.$("#phone-hold").disabled = !up;
    phone.$("#phone-hold").textContent = call && call.held ? "Resume" : "Hold";
    phone.$("#phone-mute").disabled = !up;
    phone.$("#phone-transfer").disabled = !up;
  },

  setup() {
    phone.$("#phone-on").addEventListener("click", phone.on);
    phone.$("#phone-off").addEventListener("click", phone.off);
    phone.$("#phone-call").addEventListener("click", phone.dial);
    phone.$("#phone-answer").addEventListener("click", phone.answer);
    phone.$("#phone-hangup").addEventListener("click", () => phone.send({ type: "hangup" }));
    phone.$("#phone-hold").addEventListener("click", () =>
      phone.send({ type: "hold", on: !(phone.call && phone.call.held) })
    );
    phone.$("#phone-mute").addEventListener("click", phone.mute);
    phone.$("#phone-transfer").addEventListener("click", () =>
      phone.send({ type: "transfer", to: phone.$("#phone-transfer-to").value.trim() })
    );
    for (const button of document.querySelectorAll("#phone-pad button")) {
      button.addEventListener("click", () => phone.key(button.dataset.key));
    }
    phone.buttons();
  },
};

document.addEventListener("DOMContentLoaded", phone.setup);
