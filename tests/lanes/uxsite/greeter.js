document.getElementById("go").addEventListener("click", () => {
  const greeting = document.getElementById("greeting");
  greeting.textContent = "Hello, " + document.getElementById("name").value;
  greeting.hidden = false;
});
