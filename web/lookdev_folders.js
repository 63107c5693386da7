// Load Dataset's folder: pick one of the input folder's subfolders (the combo the server lists),
// type any path, or upload reference images from this computer into an input subfolder.
// Uploads go through ComfyUI's own /upload/image (type "input", a subfolder, overwrite on, so a
// second upload of the same files replaces them instead of adding "name (1).png"); then the node
// lists are refreshed so the new folder is a choice everywhere. The two buttons are not inputs:
// they save no value, so saved workflows keep their widget positions.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { FOLDER_INPUTS } from "./lookdev_names.js";

const ACCEPT = "image/png,image/jpeg,image/webp,image/bmp,image/tiff,.txt";

function ask(title, value) {
  return new Promise((resolve) => {
    if (typeof app.canvas?.prompt === "function") {
      app.canvas.prompt(title, value, (text) => resolve(text), window.event);
    } else {
      resolve(window.prompt(title, value));
    }
  });
}

// A folder an upload can go to: relative, inside the input folder.
function uploadTarget(value) {
  const text = String(value ?? "").trim().replaceAll("\\", "/");
  if (!text || text.startsWith("/") || /^[A-Za-z]:/.test(text) || text.startsWith("~")) return null;
  if (text.split("/").includes("..")) return null;
  return text;
}

function setFolder(node, widget, value) {
  widget.value = value;
  widget.callback?.(value, app.canvas, node);
  node.setDirtyCanvas?.(true, true);
}

async function upload(node, widget, files) {
  const folder = uploadTarget(widget.value)
    ?? uploadTarget(await ask("Upload into this folder of ComfyUI's input folder", "my_refs"));
  if (!folder) return { uploaded: 0, folder: null };
  for (const [index, file] of files.entries()) {
    const body = new FormData();
    body.append("image", file);
    body.append("type", "input");
    body.append("subfolder", folder);
    body.append("overwrite", "true");
    const response = await api.fetchApi("/upload/image", { method: "POST", body });
    if (response.status !== 200) {
      throw new Error(`uploading ${file.name} into input/${folder} failed: ${response.status} ${response.statusText}`);
    }
    node.lookdevUploadStatus = `uploaded ${index + 1} / ${files.length} into input/${folder}`;
  }
  await app.refreshComboInNodes?.();
  setFolder(node, widget, folder);
  return { uploaded: files.length, folder };
}

function chooseFiles() {
  return new Promise((resolve) => {
    const input = document.createElement("input");
    input.type = "file";
    input.multiple = true;
    input.accept = ACCEPT;
    input.style.display = "none";
    input.addEventListener("change", () => {
      resolve([...(input.files ?? [])]);
      input.remove();
    });
    document.body.append(input);
    input.click();
  });
}

app.registerExtension({
  name: "LookDev.Folders",
  nodeCreated(node) {
    const name = FOLDER_INPUTS[node.comfyClass];
    const widget = node.widgets?.find((w) => w.name === name);
    if (!widget || typeof node.addWidget !== "function") return;
    const typed = node.addWidget("button", "type a folder path", null, async () => {
      const text = await ask("Folder of reference images (absolute, or inside ComfyUI's input folder)", widget.value);
      if (text != null && String(text).trim()) setFolder(node, widget, String(text).trim());
    }, { serialize: false });
    const uploads = node.addWidget("button", "upload images", null, () => {
      // Kept on the node so a caller (or a test) can wait for the upload to finish.
      node.lookdevUpload = chooseFiles().then((files) => (files.length ? upload(node, widget, files) : null));
      node.lookdevUpload.catch((error) => {
        node.lookdevUploadStatus = String(error.message ?? error);
        console.warn("LookDev:", node.lookdevUploadStatus);
      });
    }, { serialize: false });
    // Not values: kept out of widgets_values (1.32 reads widget.serialize) and of the prompt.
    for (const button of [typed, uploads]) if (button) button.serialize = false;
    node.setSize([node.size[0], Math.max(node.size[1], node.computeSize()[1])]);
  },
});
