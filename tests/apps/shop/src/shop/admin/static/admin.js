console.log("shop admin");
