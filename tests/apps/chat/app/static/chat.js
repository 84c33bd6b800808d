new WebSocket(location.origin.replace("http", "ws") + "/ws").onmessage = (e) => console.log(e.data);
