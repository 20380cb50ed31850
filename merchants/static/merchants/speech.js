/* Vietnamese number words for the vendor's spoken announcement ("Đã nhận mười lăm nghìn đồng").
 * The twin of merchants/speech.py: tests run both on the same amounts and require the same text.
 * Works as a browser script (window.VnSpeech) and as a CommonJS module (Node, for the tests). */
(function (root) {
  "use strict";
  var DIGITS = ["không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín"];
  var SCALES = ["", "nghìn", "triệu"];

  function tensAndUnits(tens, units, hasHundreds) {
    var words = [];
    if (tens === 0) {
      if (units) {
        if (hasHundreds) words.push("lẻ");
        words.push(DIGITS[units]);
      }
      return words;
    }
    if (tens === 1) words.push("mười");
    else words.push(DIGITS[tens], "mươi");
    if (units === 1) words.push(tens >= 2 ? "mốt" : "một");
    else if (units === 4) words.push(tens >= 2 ? "tư" : "bốn");
    else if (units === 5) words.push("lăm");
    else if (units) words.push(DIGITS[units]);
    return words;
  }

  function group(value, full) {
    var hundreds = Math.floor(value / 100);
    var rest = value % 100;
    var words = [];
    if (hundreds || full) words.push(DIGITS[hundreds], "trăm");
    return words.concat(tensAndUnits(Math.floor(rest / 10), rest % 10, Boolean(hundreds) || full));
  }

  function belowBillion(value, leading) {
    var groups = [];
    while (value) {
      groups.push(value % 1000);
      value = Math.floor(value / 1000);
    }
    var words = [];
    for (var i = groups.length - 1; i >= 0; i--) {
      if (groups[i] === 0) continue;
      var isFirst = leading && i === groups.length - 1;
      words = words.concat(group(groups[i], !isFirst));
      if (SCALES[i]) words.push(SCALES[i]);
    }
    return words;
  }

  function numberWords(amount) {
    if (typeof amount !== "number" || !Number.isSafeInteger(amount) || amount < 0) {
      throw new RangeError("a non-negative integer is needed");
    }
    if (amount === 0) return DIGITS[0];
    var billions = Math.floor(amount / 1000000000);
    var rest = amount % 1000000000;
    var words = [];
    if (billions) words = words.concat(numberWords(billions).split(" "), ["tỷ"]);
    if (rest) words = words.concat(belowBillion(rest, !billions));
    return words.join(" ");
  }

  function announcement(amount) {
    return "Đã nhận " + numberWords(amount) + " đồng";
  }

  var api = { numberWords: numberWords, announcement: announcement };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  else root.VnSpeech = api;
})(typeof window !== "undefined" ? window : this);
