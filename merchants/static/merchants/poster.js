/* The poster page's print button (CSP forbids inline handlers). */
document.getElementById("print-poster").addEventListener("click", () => window.print());
