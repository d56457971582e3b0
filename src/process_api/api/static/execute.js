// The execute form of a process page, made from the process description's input schemas:
// text, numbers with their bounds, choices, booleans, lists with add and remove, bounding
// boxes, files (sent base64), links (by reference), JSON for the rest. It checks what it can
// before sending, shows the server's 400 next to the input it names, shows the request as
// curl, Python (httpx) and OWSLib, and sends it: a synchronous run shows its results, an
// asynchronous one opens the job's page.
"use strict";
(function () {
  var form = document.getElementById("execute");
  var data = document.getElementById("process-description");
  if (!form || !data) { return; }
  var process = JSON.parse(data.textContent);
  var executeUrl = form.dataset.executeUrl;
  var fields = {};  // input id -> {read: function () -> value | undefined, error: element}

  function element(tag, attributes, children) {
    var made = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) {
      var value = attributes[name];
      if (value === true) { made.setAttribute(name, ""); }
      else if (value !== false && value != null) { made.setAttribute(name, String(value)); }
    });
    (children || []).forEach(function (child) {
      made.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return made;
  }

  function typeOf(schema) {
    var type = schema.type;
    if (Array.isArray(type)) { type = type.filter(function (t) { return t !== "null"; })[0]; }
    return type;
  }

  function isBbox(schema) {
    return schema.format === "ogc-bbox" || (typeOf(schema) === "object" &&
      schema.properties && schema.properties.bbox !== undefined);
  }

  function isBinary(schema) {
    return typeOf(schema) === "string" && (schema.format === "binary" ||
      schema.format === "byte" || schema.contentEncoding === "base64");
  }

  // An example is shown as a hint, never sent unless the person types it.
  function hint(schema) {
    if (Array.isArray(schema.examples) && schema.examples.length) {
      var first = schema.examples[0];
      return typeof first === "string" ? first : JSON.stringify(first);
    }
    return undefined;
  }

  // One value of a schema: an element to show, and how to read it (undefined: left empty).
  function control(id, schema, required) {
    var type = typeOf(schema);
    var given = schema.default;
    if (Array.isArray(schema.enum)) {
      var select = element("select", {id: id, required: required});
      if (!required) { select.appendChild(element("option", {value: ""}, ["(none)"])); }
      schema.enum.forEach(function (choice, index) {
        select.appendChild(element("option", {value: String(index),
          selected: JSON.stringify(choice) === JSON.stringify(given)}, [String(choice)]));
      });
      return {node: select, focus: select, read: function () {
        return select.value === "" ? undefined : schema.enum[Number(select.value)];
      }};
    }
    if (type === "boolean" && required) {
      var box = element("input", {type: "checkbox", id: id, checked: given === true});
      return {node: box, focus: box, read: function () { return box.checked; }};
    }
    if (type === "boolean") {  // optional: it may also be left out
      var choice = element("select", {id: id}, [element("option", {value: ""}, ["(none)"]),
        element("option", {value: "true", selected: given === true}, ["yes"]),
        element("option", {value: "false", selected: given === false}, ["no"])]);
      return {node: choice, focus: choice, read: function () {
        return choice.value === "" ? undefined : choice.value === "true";
      }};
    }
    if (type === "integer" || type === "number") {
      var number = element("input", {type: "number", id: id, required: required,
        step: type === "integer" ? 1 : "any", min: schema.minimum, max: schema.maximum,
        value: given, placeholder: hint(schema), inputmode: "decimal"});
      return {node: number, focus: number, read: function () {
        if (number.value === "") { return undefined; }
        var value = Number(number.value);
        if (schema.exclusiveMinimum !== undefined && value <= schema.exclusiveMinimum) {
          throw new Error("must be more than " + schema.exclusiveMinimum);
        }
        if (schema.exclusiveMaximum !== undefined && value >= schema.exclusiveMaximum) {
          throw new Error("must be less than " + schema.exclusiveMaximum);
        }
        if (schema.multipleOf && Math.abs(value / schema.multipleOf -
            Math.round(value / schema.multipleOf)) > 1e-9) {
          throw new Error("must be a multiple of " + schema.multipleOf);
        }
        return value;
      }};
    }
    if (isBbox(schema)) { return bboxControl(id, required); }
    if (isBinary(schema)) { return fileControl(id, required); }
    if (type === "array") { return listControl(id, schema.items || {}, schema.minItems || 0,
      schema.maxItems, required); }
    if (type === "string") {
      var inputType = {"date": "date", "date-time": "datetime-local", "email": "email",
        "uri": "url"}[schema.format] || "text";
      var text = element("input", {type: inputType, id: id, required: required,
        minlength: schema.minLength, maxlength: schema.maxLength, value: given,
        placeholder: hint(schema)});
      return {node: text, focus: text, read: function () {
        if (text.value === "") { return undefined; }
        // JSON Schema's pattern is found anywhere in the text (HTML's would match it whole)
        if (schema.pattern && !new RegExp(schema.pattern, "u").test(text.value)) {
          throw new Error("does not match " + schema.pattern);
        }
        return inputType === "datetime-local" ? new Date(text.value).toISOString() : text.value;
      }};
    }
    // an object, or a schema the form has no field for: JSON
    var area = element("textarea", {id: id, rows: 4, required: required, spellcheck: "false",
      "aria-describedby": id + "-json-note"});
    area.value = given === undefined ? "" : JSON.stringify(given, null, 2);
    if (hint(schema)) { area.placeholder = hint(schema); }
    var holder = element("div", {}, [area, element("small", {id: id + "-json-note"},
      [" JSON"])]);
    return {node: holder, focus: area, read: function () {
      if (area.value.trim() === "") { return undefined; }
      try { return JSON.parse(area.value); } catch (error) { throw new Error("is not JSON: " + error.message); }
    }};
  }

  function bboxControl(id, required) {
    var names = ["west (min x)", "south (min y)", "east (max x)", "north (max y)"];
    var corners = names.map(function (name, index) {
      return element("input", {type: "number", step: "any", required: required,
        id: id + "-" + index, "aria-label": name, placeholder: name});
    });
    var crs = element("select", {id: id + "-crs", "aria-label": "Coordinate reference system"}, [
      element("option", {value: "http://www.opengis.net/def/crs/OGC/1.3/CRS84"},
        ["CRS84 (longitude, latitude)"])]);
    var node = element("fieldset", {class: "bbox"}, [element("legend", {}, ["Bounding box"])]
      .concat(corners, [crs]));
    return {node: node, focus: corners[0], read: function () {
      var values = corners.map(function (c) { return c.value; });
      if (values.every(function (v) { return v === ""; })) { return undefined; }
      if (values.some(function (v) { return v === ""; })) { throw new Error("needs four numbers"); }
      return {bbox: values.map(Number), crs: crs.value};
    }};
  }

  function fileControl(id, required) {
    var file = element("input", {type: "file", id: id, required: required});
    var read = {data: undefined};
    file.addEventListener("change", function () {
      read.data = undefined;
      if (!file.files.length) { return; }
      var reader = new FileReader();
      reader.onload = function () {
        read.data = String(reader.result).split(",")[1] || "";
        form.dispatchEvent(new Event("change"));  // the snippets now hold the file
      };
      reader.onerror = function () { file.value = ""; };
      reader.readAsDataURL(file.files[0]);
    });
    return {node: file, focus: file, read: function () {
      if (file.files.length && read.data === undefined) { throw new Error("is still being read"); }
      return read.data;
    }};
  }

  function listControl(id, itemSchema, least, most, required) {
    var items = element("ol", {class: "items", id: id + "-items"});
    var controls = [];
    var made = 0;  // ids stay unique as values are removed and added
    var add = element("button", {type: "button", class: "add"}, ["Add a value"]);
    function addItem() {
      // each value is checked by read() (an empty one is left out), not by the browser
      var one = control(id + "-" + made, itemSchema, false);
      made += 1;
      var remove = element("button", {type: "button", class: "remove"}, ["Remove"]);
      var item = element("li", {}, [one.node, remove]);
      controls.push(one);
      remove.addEventListener("click", function () {
        controls.splice(controls.indexOf(one), 1);
        items.removeChild(item);
        add.disabled = false;
        add.focus();
      });
      items.appendChild(item);
      add.disabled = most !== undefined && controls.length >= most;
    }
    add.addEventListener("click", addItem);
    for (var i = 0; i < Math.max(least, 1); i++) { addItem(); }
    return {node: element("div", {}, [items, add]), focus: controls[0].focus, read: function () {
      var values = controls.map(function (c) { return c.read(); })
        .filter(function (v) { return v !== undefined; });
      if (!values.length && !required) { return undefined; }
      if (values.length < least) { throw new Error("needs at least " + least + " values"); }
      return values;
    }};
  }

  function inputField(id, description) {
    var schema = description.schema || {};
    var required = (description.minOccurs === undefined ? 1 : description.minOccurs) > 0;
    var several = description.maxOccurs === "unbounded" || description.maxOccurs > 1;
    var made = several ? listControl("in-" + id, schema, description.minOccurs || 0,
      description.maxOccurs === "unbounded" ? undefined : description.maxOccurs, required)
      : control("in-" + id, schema, required);
    var label = element("label", {for: made.focus.id || ("in-" + id)}, [
      description.title || id, required ? " (required)" : ""]);
    var byReference = element("input", {type: "checkbox", id: "ref-" + id});
    var link = element("input", {type: "url", id: "href-" + id, hidden: true,
      placeholder: "https://…", "aria-label": (description.title || id) + ": link"});
    byReference.addEventListener("change", function () {
      link.hidden = !byReference.checked;
      made.node.hidden = byReference.checked;
      // the hidden value is neither checked nor sent
      Array.prototype.forEach.call(made.node.querySelectorAll("input,select,textarea,button"),
        function (control) { control.disabled = byReference.checked; });
      if (made.node.matches("input,select,textarea")) { made.node.disabled = byReference.checked; }
    });
    var error = element("p", {class: "field-error", id: "error-" + id, role: "alert"});
    made.focus.setAttribute("aria-describedby", "error-" + id);
    var help = description.description ? element("small", {}, [description.description]) : null;
    var field = element("div", {class: "field", "data-input": id}, [label,
      help || "", made.node, link,
      element("label", {class: "by-reference"}, [byReference, " by reference (a link)"]),
      error]);
    fields[id] = {error: error, focus: made.focus, read: function () {
      if (byReference.checked) { return link.value ? {href: link.value} : undefined; }
      return made.read();
    }, required: required};
    return field;
  }

  function clearErrors() {
    Object.keys(fields).forEach(function (id) {
      fields[id].error.textContent = "";
      fields[id].focus.removeAttribute("aria-invalid");
    });
    document.getElementById("execute-error").textContent = "";
  }

  function showError(id, message) {
    var field = fields[id];
    if (!field) { return false; }
    field.error.textContent = message;
    field.focus.setAttribute("aria-invalid", "true");
    return true;
  }

  // The request the form stands for, or null once an error is shown; `quiet`: the request
  // with what is valid so far, showing nothing (for the snippets, as the person types).
  function request(quiet) {
    if (!quiet) { clearErrors(); }
    var inputs = {};
    var first = null;
    Object.keys(fields).forEach(function (id) {
      var value;
      try {
        value = fields[id].read();
        if (value === undefined && fields[id].required) { throw new Error("is required"); }
      } catch (error) {
        if (!quiet) { showError(id, (process.inputs[id].title || id) + " " + error.message); }
        first = first || fields[id].focus;
        return;
      }
      if (value !== undefined) { inputs[id] = value; }
    });
    if (!quiet && !form.checkValidity()) { form.reportValidity(); return null; }
    if (!quiet && first) { first.focus(); return null; }
    var body = {inputs: inputs};
    var wanted = Array.prototype.slice.call(form.querySelectorAll("input[name=output]:checked"))
      .map(function (box) { return box.value; });
    var transmission = form.querySelector("select[name=transmission]");
    var outputs = Object.keys(process.outputs || {});
    if (outputs.length && !wanted.length) {
      if (!quiet) {
        document.getElementById("execute-error").textContent = "Choose at least one output.";
        return null;
      }
    }
    if (wanted.length !== Object.keys(process.outputs || {}).length ||
        (transmission && transmission.value !== "value")) {
      body.outputs = {};
      wanted.forEach(function (id) {
        body.outputs[id] = transmission ? {transmissionMode: transmission.value} : {};
      });
    }
    var mode = form.querySelector("input[name=mode]:checked");
    var async = mode ? mode.value === "async" : false;
    // shown here as a document: one value per output, whatever their number and types
    if (!async) { body.response = "document"; }
    return {body: body, async: async};
  }

  function quoted(text) { return "'" + text.replace(/'/g, "'\\''") + "'"; }

  // A JSON value as a Python literal (JSON's strings and numbers are Python's too).
  function python(value, indent) {
    var inner = indent + "    ";
    if (value === null) { return "None"; }
    if (value === true) { return "True"; }
    if (value === false) { return "False"; }
    if (typeof value !== "object") { return JSON.stringify(value); }
    if (Array.isArray(value)) {
      if (!value.length) { return "[]"; }
      return "[\n" + value.map(function (item) { return inner + python(item, inner); })
        .join(",\n") + ",\n" + indent + "]";
    }
    var keys = Object.keys(value);
    if (!keys.length) { return "{}"; }
    return "{\n" + keys.map(function (key) {
      return inner + JSON.stringify(key) + ": " + python(value[key], inner);
    }).join(",\n") + ",\n" + indent + "}";
  }

  function snippets(wanted) {
    var body = wanted.body;
    var prefer = wanted.async ? " -H 'Prefer: respond-async'" : "";
    var base = executeUrl.replace(/\/processes\/[^/]+\/execution$/, "");
    document.getElementById("snippet-curl").textContent = "curl -s " + quoted(executeUrl) +
      " -H 'Content-Type: application/json'" + prefer + " -d " + quoted(JSON.stringify(body));
    document.getElementById("snippet-httpx").textContent = "import httpx\n\nresponse = httpx.post(\n" +
      "    " + JSON.stringify(executeUrl) + ",\n    json=" + python(body, "    ") + ",\n" +
      (wanted.async ? '    headers={"Prefer": "respond-async"},\n' : "") +
      "    timeout=None,\n)\nprint(response.status_code, response.json())\n";
    document.getElementById("snippet-owslib").textContent =
      "from owslib.ogcapi.processes import Processes\n\nserver = Processes(" +
      JSON.stringify(base) + ")\nresult = server.execute(\n    " + JSON.stringify(process.id) +
      ",\n    inputs=" + python(body.inputs, "    ") + ",\n" +
      (body.outputs ? "    outputs=" + python(body.outputs, "    ") + ",\n" : "") +
      (body.response ? "    response=" + JSON.stringify(body.response) + ",\n" : "") +
      "    async_=" + (wanted.async ? "True" : "False") + ",\n)\nprint(result)\n";
  }

  // The server's 400 lists each problem with the input it is about (`problems`); other
  // errors have their detail only.
  function showServerError(answer, status) {
    var placed = false;
    var problems = answer.problems ||
      [{input: null, detail: answer.detail || answer.title || String(status)}];
    problems.forEach(function (problem) {
      if (problem.input != null && showError(problem.input, problem.detail)) { placed = true; }
      else { document.getElementById("execute-error").textContent += problem.detail + " "; }
    });
    var invalid = form.querySelector("[aria-invalid=true]");
    if (placed && invalid) { invalid.focus(); }
  }

  function showResults(response) {
    var area = document.getElementById("execute-results");
    area.hidden = false;
    area.textContent = "";
    // the job's page shows each output by its type (images, maps, JSON that folds)
    var monitor = /<([^>]+)>;\s*rel="monitor"/.exec(response.headers.get("Link") || "");
    if (monitor) {
      area.appendChild(element("p", {}, [
        element("a", {href: monitor[1] + "?f=html", id: "execute-job"}, ["The job's page"])]));
    }
    var type = response.headers.get("content-type") || "";
    if (response.status === 204) { area.textContent = "Done: the process has no outputs."; return; }
    if (type.indexOf("json") >= 0) {
      return response.json().then(function (value) {
        area.appendChild(element("pre", {}, [JSON.stringify(value, null, 2)]));
      });
    }
    return response.blob().then(function (blob) {
      var link = element("a", {href: URL.createObjectURL(blob), download: "result"},
        ["Download the result (" + blob.size + " bytes, " + type + ")"]);
      area.appendChild(link);
    });
  }

  function send(event) {
    event.preventDefault();
    var wanted = request();
    if (!wanted) { return; }
    var token = document.querySelector('meta[name="csrf-token"]');
    var headers = {"Content-Type": "application/json", "Accept": "application/json"};
    if (token) { headers["X-CSRF-Token"] = token.content; }
    if (wanted.async) { headers.Prefer = "respond-async"; }
    var button = document.getElementById("execute-button");
    button.disabled = true;
    document.getElementById("execute-state").textContent = wanted.async ? "Submitting…" : "Running…";
    fetch(executeUrl, {method: "POST", headers: headers, body: JSON.stringify(wanted.body),
                       credentials: "same-origin"})
      .then(function (response) {
        document.getElementById("execute-state").textContent = "";
        if (response.status === 201) {
          window.location.href = response.headers.get("Location") + "?f=html";
          return;
        }
        if (response.ok) { return showResults(response); }
        return response.json().then(function (problem) {
          showServerError(problem, response.status);
        });
      })
      .catch(function (error) {
        document.getElementById("execute-error").textContent = "The request failed: " + error;
      })
      .then(function () { button.disabled = false; });
  }

  var list = document.getElementById("execute-inputs");
  Object.keys(process.inputs || {}).forEach(function (id) {
    list.appendChild(inputField(id, process.inputs[id]));
  });
  form.hidden = false;
  form.addEventListener("submit", send);
  function update() { snippets(request(true)); }
  form.addEventListener("input", update);
  form.addEventListener("change", update);
  document.querySelectorAll("button.copy").forEach(function (button) {
    button.addEventListener("click", function () {
      var text = document.getElementById(button.dataset.target).textContent;
      if (navigator.clipboard) { navigator.clipboard.writeText(text); }
    });
  });
  update();
})();
